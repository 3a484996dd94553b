"""Every read of a cycle, in one place: the pull, Monotree's templates, users and holders,
and what the store knows. The result is one frozen `Observation` for `decide`.

Nothing here writes: what a cycle keeps of its reads (the pull snapshot, the
holders read, the user list) the cycle writes itself, after gathering.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from certsync.clients.holders import read_holders
from certsync.clients.monotree import user_holding
from certsync.clients.session import Clients
from certsync.engine.counts import (
    CountMoved,
    CountRange,
    count_ranges,
    counts_moved,
    untrusted,
    watched,
)
from certsync.engine.known import KnownHoldings, KnownOwnership
from certsync.engine.observation import Observation
from certsync.engine.pulled import Pulled, pull_certifications
from certsync.engine.quiet import QuietCheck, Unchanged, inputs_digest
from certsync.errors import NotFoundError, StopRequested
from certsync.mappings_file import MappingFile
from certsync.models import (
    Holding,
    Mappings,
    Pull,
    Template,
    User,
    UserMapping,
    normal_email,
    resolve_mappings,
)
from certsync.store import Store

Say = Callable[[str], None]
Lap = Callable[[str], None]


def _mappings(
    store: Store, mapping_file: MappingFile | None, by_email: Mapping[str, int]
) -> tuple[Mappings, list[UserMapping]]:
    if mapping_file is None:
        return store.resolved_mappings(by_email)
    # The file is what the store holds after its import (with prune): a dry run
    # uses it as it is, without importing it.
    return resolve_mappings(mapping_file.types, mapping_file.users, mapping_file.policy, by_email)


def _removed(
    store: Store,
    unimported: MappingFile | None,
    mappings: Mappings,
    *,
    by_email: Mapping[str, int],
) -> Mappings:
    """The mappings taken out of the file: remembered by the store when it imported the
    file; for a file not imported (a dry run), also what the store maps and it does not."""
    types, users = store.mappings.removed()
    if unimported is not None:
        in_file_types = {t.natecosmic: t for t in unimported.types}
        in_file_users = {u.natecosmic: u for u in unimported.users}
        types += [t for t in store.mappings.types() if in_file_types.get(t.natecosmic) != t]
        users += [u for u in store.mappings.users() if in_file_users.get(u.natecosmic) != u]
    resolved, _ = resolve_mappings(types, users, mappings.policy, by_email)
    return resolved


def gather(
    *,
    store: Store,
    clients: Clients,
    mapping_file: MappingFile | None,
    full: bool,
    now: datetime,
    concurrency: int,
    also_read: frozenset[int] = frozenset(),
    say: Say,
    lap: Lap,
    on_pull: Callable[[Pulled], None] = lambda _pulled: None,
    file_imported: bool = True,
    quiet: QuietCheck | None = None,
) -> Observation | Unchanged:
    """Read both APIs and the store. `on_pull` runs as soon as the pull is in, while
    Monotree's reads may still be out (the cycle keeps its snapshot there).
    `file_imported` is false for a dry run, whose mapping file the store has not seen.
    `also_read` templates are read afresh even on an incremental cycle. With `quiet`,
    an incremental cycle whose inputs are `quiet.since` decodes nothing: `Unchanged`."""
    by_email: Mapping[str, int] = store.users.by_email()
    # A cycle that may turn out quiet reads the user mappings (25,000 in a large tenant)
    # only once it knows it must decide: their revision stands for them in the digest,
    # read before them (an import may run beside the cycle: the next one then decides).
    revision = store.mappings.revision()
    every_user = quiet is None or mapping_file is not None
    # The user mappings without a Monotree id: the only ones left unresolved, and what
    # Monotree's users make of the mappings (for the digest). Read once.
    id_less = [] if quiet is None else _without_id(store, mapping_file)
    if every_user:
        mappings, unresolved = _mappings(store, mapping_file, by_email)
    else:
        m = store.mappings
        mappings, unresolved = resolve_mappings(m.types(), id_less, m.policy(), by_email)
    has_email_users = (
        any(u.monotree_email for u in mapping_file.users)
        if mapping_file is not None
        else store.mappings.has_email()
    )
    missing_users: frozenset[int] = frozenset()
    listed_users: list[User] = []
    if has_email_users and (full or (unresolved and store.users.ids() is None)):
        say("reading Monotree's user list for email mappings")
        listed_users = clients.monotree.list_users()
        by_email = {normal_email(u.email) or "": u.id for u in listed_users if u.email}
        mappings, unresolved = _mappings(store, mapping_file, by_email)
        every_user = True
        # Only a list read in this very cycle may call a user missing: an older
        # one has not seen today's new hires.
        missing_users = frozenset(set(mappings.users.values()) - {u.id for u in listed_users})

    unimported = None if file_imported else mapping_file
    removed = _removed(store, unimported, mappings, by_email=by_email)
    mapped = list(mappings.template_ids())
    # Which templates certsync wrote to; the pairs themselves only once the cycle decides.
    unmapped_owned = sorted(store.holdings.owned_certificates() - set(mapped))
    states = store.holdings.template_states()
    abandon = threading.Event()
    lap("load_seconds")
    moved: list[CountMoved] = []
    # What Monotree's counts should say, to see a change made by hand (`counts.py`).
    ranges: dict[int, CountRange] = {}

    def read_monotree() -> tuple[dict[int, Template], dict[int, dict[int, Holding]], list[int]]:
        # The template list is read every cycle: it proves the token and the URL,
        # and says which mapped templates were deleted or unpublished.
        listed = {t.id: t for t in clients.monotree.list_templates()}
        present = [c for c in mapped if c in listed]
        if full:
            extra = [c for c in unmapped_owned if c in listed]
            to_read = present + (extra if mappings.policy.revoke_unmapped else [])
        else:
            to_read = [c for c in present if c not in states or states[c].dirty]
            ranges.update(
                count_ranges(
                    watched(listed, [c for c in present if c not in to_read], states),
                    listed,
                    {} if quiet is None else quiet.ranges,
                    store.holdings.count_basis,
                    now.date(),
                )
            )
            moved.extend(counts_moved(listed, ranges))
            to_read += [m.certificate_id for m in moved]
            # What a person reviewed is read afresh, mapped or not (revoke_unmapped).
            to_read += sorted(c for c in also_read if c in listed and c not in to_read)
        read, gone = read_holders(
            clients.monotree, to_read, concurrency=concurrency, now=now, abandon=abandon
        )
        return listed, read, gone

    # The Monotree reads and the pull do not depend on each other: the reads go out
    # first, in the background, and the pull is made and parsed while they wait.
    say("pulling certifications; reading Monotree's templates and holders")
    pulled: Pulled | None = None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="read") as background:
        reading = background.submit(read_monotree)
        try:
            try:
                # A dry run keeps no snapshot: a body decoded whole needs no prints.
                pulled = pull_certifications(
                    store, clients, conditional=not full, printed=file_imported
                )
            finally:
                lap("pull_seconds")
            on_pull(pulled)
            if quiet is None:
                # This cycle decides whatever the reads say: decode now, while they are
                # out (a changed body was decoded already, to keep its snapshot; an
                # unchanged one is decoded here: 1.5-2.5 s at 100,000 records).
                pulled.pull  # noqa: B018 - decodes on first use
                lap("decode_seconds")
        except BaseException:
            abandon.set()
            if pulled is not None:
                pulled.close()  # the body kept aside holds personal data: not left to GC
            raise
        try:
            listed, read, gone = reading.result()
            lap("read_seconds")
            missing = sorted({c for c in mapped if c not in listed} | set(gone))
            inputs = None
            if quiet is not None and not (full or read or gone or also_read):
                inputs = inputs_digest(
                    made_from=pulled.made_from,
                    mappings_revision=revision,
                    by_email=resolve_mappings((), id_less, mappings.policy, by_email)[0].users,
                    removed=removed,
                    unresolved=_emails(unresolved),
                    templates=listed,
                    check=quiet,
                )
                if pulled.unchanged and inputs == quiet.since:
                    return Unchanged(
                        inputs=inputs,
                        templates=listed,
                        mappings=mappings,
                        unresolved_emails=_emails(unresolved),
                        missing_templates=tuple(missing),
                        unmapped_owned=tuple(unmapped_owned),
                        unpublished_templates=tuple(
                            c for c in mapped if c in listed and not listed[c].is_published
                        ),
                        counts_untrusted=tuple(untrusted(states, mapped)),
                        count_ranges=ranges,
                    )
            pull = pulled.pull
        finally:
            pulled.close()
    if not every_user:
        mappings, unresolved = _mappings(store, mapping_file, by_email)

    known = [
        c for c in [*mapped, *unmapped_owned] if c not in read and c in listed and c not in gone
    ]
    # Read when the decision first looks: one made again for some people reads theirs.
    holdings = KnownHoldings(
        known,
        lambda: store.holdings.known(known),
        lambda users: store.holdings.known(known, users),
        read,
    )
    owned = KnownOwnership(
        store.holdings.owned_pairs,
        lambda users: store.holdings.owned_pairs_of([*known, *read], users),
    )
    return Observation(
        full=full,
        pull=pull,
        mappings=mappings,
        removed=removed,
        unresolved_emails=_emails(unresolved),
        missing_users=missing_users,
        listed_users=tuple(listed_users),
        templates=listed,
        read=read,
        holdings=holdings,
        owned=owned,
        missing_templates=tuple(missing),
        unmapped_owned=tuple(unmapped_owned),
        inputs=inputs,
        counts_moved=tuple(moved),
        counts_untrusted=tuple(untrusted(states, (c for c in mapped if c not in read))),
        count_ranges=ranges,
    )


def _without_id(store: Store, mapping_file: MappingFile | None) -> list[UserMapping]:
    if mapping_file is None:
        return store.mappings.users_without_id()
    return [u for u in mapping_file.users if u.monotree is None]


def _emails(unresolved: list[UserMapping]) -> tuple[str, ...]:
    return tuple(sorted(str(u.monotree_email) for u in unresolved))


def gather_users(
    *,
    store: Store,
    clients: Clients,
    mapping_file: MappingFile | None,
    user_ids: frozenset[int],
    now: datetime,
    say: Say,
    lap: Lap,
    on_pull: Callable[[Pulled], None] = lambda _pulled: None,
    file_imported: bool = True,
    pull: Pull | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> Observation:
    """The reads of a sync scoped to some Monotree users: the pull (unless given) and each
    user's certificates, one request a user. Nothing else is read: no template list
    and no holder list, so a scoped sync costs the pull plus one request a person.

    The holdings cover only these users; `read` stays empty, because one user's
    certificates are not a full read of any template.
    """
    by_email: Mapping[str, int] = store.users.by_email()
    mappings, unresolved = _mappings(store, mapping_file, by_email)
    unimported = None if file_imported else mapping_file
    removed = _removed(store, unimported, mappings, by_email=by_email)
    owned = store.holdings.owned_pairs()
    lap("load_seconds")
    if pull is None:
        say("pulling certifications")
        pulled = pull_certifications(store, clients, printed=file_imported)
        lap("pull_seconds")
        try:
            on_pull(pulled)
            pull = pulled.pull
        finally:
            pulled.close()
    holdings: dict[int, dict[int, Holding]] = {c: {} for c in mappings.template_ids()}
    for cert, user in owned:
        if user in user_ids:
            holdings.setdefault(cert, {})
    missing: set[int] = set()
    for user in sorted(user_ids):
        if should_stop():  # a group of webhook users is many reads: a stop waits for one
            raise StopRequested("stopping: the sync ends before its next read")
        say(f"reading Monotree user {user}'s certificates")
        try:
            certificates = clients.monotree.user_certificates(user)
        except NotFoundError:
            missing.add(user)  # deactivated, deleted, or an invite still pending
            continue
        for held in certificates:
            holdings.setdefault(held.id, {})[user] = user_holding(held, user, now)
    lap("read_seconds")
    return Observation(
        full=False,
        pull=pull,
        mappings=mappings,
        removed=removed,
        unresolved_emails=_emails(unresolved),
        missing_users=frozenset(missing),
        listed_users=(),
        templates={},
        read={},
        holdings=holdings,
        owned=owned,
        missing_templates=(),
        unmapped_owned=(),
    )
