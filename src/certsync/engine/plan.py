"""The reconcile engine's pure core: what must change, and in which requests.

Every function here is a function of its arguments alone: no clock (today is
passed in), no logging, no database, no HTTP. Outputs are sorted so the same
input always gives the same plan, which makes dry runs, tests and journals
comparable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence, Set
from datetime import date
from typing import Literal

from certsync.actions import (
    Assign,
    Drift,
    HoldBack,
    KeptNewer,
    MissingUser,
    Plan,
    Renewal,
    Revoke,
    Unmanaged,
    Unmapped,
)
from certsync.engine.scope import Scope
from certsync.models import (
    CertificationRecord,
    Holding,
    Holdings,
    Mappings,
    Pair,
    Policy,
    RejectedRecord,
    TypeMapping,
)
from certsync.pairs import Pairs

DRIFT_TOLERANCE_DAYS = 1
EVERYTHING = Scope()


def is_held(record: CertificationRecord, policy: Policy, today: date) -> bool:
    """A record counts as held when it is active, valid, unexpired (and verified, if required)."""
    if record.lifecycle_status != "active" or record.validity_status != "valid":
        return False
    if record.expires_on is not None and record.expires_on < today:
        return False
    return not (policy.require_verified and record.verification_status != "verified")


def not_held_because(record: CertificationRecord, policy: Policy, today: date) -> str | None:
    """Which field makes a record not count as held (None: it counts). `is_held`'s rule,
    spelled out for `explain`; a test holds the two equal."""
    if record.lifecycle_status != "active":
        return f"lifecycle_status is {record.lifecycle_status!r}, not 'active'"
    if record.validity_status != "valid":
        return f"validity_status is {record.validity_status!r}, not 'valid'"
    if record.expires_on is not None and record.expires_on < today:
        return f"expires_on {record.expires_on} is past"
    if policy.require_verified and record.verification_status != "verified":
        return (
            f"verification_status is {record.verification_status!r} and the policy "
            "requires 'verified' (require_verified)"
        )
    return None


def _latest(a: CertificationRecord, b: CertificationRecord) -> CertificationRecord:
    # The latest issue wins; equal dates fall back to the record id so the
    # choice does not depend on the order Natecosmic listed them in.
    return max(a, b, key=lambda r: (r.issued_on, r.id))


def _drifts(monotree: date | None, natecosmic: date | None) -> bool:
    if monotree is None or natecosmic is None:
        return monotree != natecosmic
    return abs((monotree - natecosmic).days) > DRIFT_TOLERANCE_DAYS


def plan(
    records: Iterable[CertificationRecord],
    mappings: Mappings,
    holdings: Holdings,
    owned: Set[Pair],
    today: date,
    *,
    rejected: Iterable[RejectedRecord] = (),
    missing_users: Set[int] = frozenset(),
    scope: Scope = EVERYTHING,
    removed: Mappings | None = None,
) -> Plan:
    """Compute every action that makes Monotree hold exactly what Natecosmic says
    (`plan_by_person`, without the tally)."""
    the_plan, _ = plan_by_person(
        records,
        mappings,
        holdings,
        owned,
        today,
        rejected=rejected,
        missing_users=missing_users,
        scope=scope,
        removed=removed,
        tally=False,
    )
    return the_plan


# A person's counts, by Monotree user: desired, owned active, left alone.
Tally = dict[int, list[int]]


def plan_by_person(
    records: Iterable[CertificationRecord],
    mappings: Mappings,
    holdings: Holdings,
    owned: Set[Pair],
    today: date,
    *,
    rejected: Iterable[RejectedRecord] = (),
    missing_users: Set[int] = frozenset(),
    scope: Scope = EVERYTHING,
    removed: Mappings | None = None,
    unmapped_too: bool = False,
    tally: bool = True,
) -> tuple[Plan, Tally]:
    """Compute every action that makes Monotree hold exactly what Natecosmic says, and
    (with `tally`) each Monotree user's share of the plan's counts.

    `holdings` must hold an entry (possibly empty) for every mapped template:
    a template missing from it is treated as having no holders. It may also
    hold templates no longer mapped, whose owned holdings are then reported as
    unmanaged (or revoked, with `policy.revoke_unmapped`). `owned` is the set
    of (certificate, user) pairs certsync issued. `missing_users` are mapped
    Monotree users that Monotree does not list.

    Nothing outside `scope` is planned, and `owned_active` (the guard's base)
    counts only the holdings inside it; records without a mapping are reported
    only when the scope is everything (a narrower scope cannot say whose they are),
    or with `unmapped_too`: the records given are then all of their people's.

    `removed` holds the mappings the operator took out of the file (or pointed
    elsewhere). A holding that only they explain is a configuration change, not
    an upstream fact: it is reported as unmanaged, never revoked, unless
    `policy.revoke_unmapped`; a holding no mapping ever explained follows the
    usual rules (an authoritative template revokes it).
    """
    policy = mappings.policy
    # Read twice (what is desired, what a removed mapping explained): not a one-shot iterator.
    records = records if isinstance(records, Sequence) else tuple(records)
    unmapped: list[Unmapped] = []
    # By template, then user: 100,000 pairs without a tuple each (5 MB at the plan's peak).
    desired: dict[int, dict[int, CertificationRecord]] = {}

    type_mapping_of = _type_lookup(mappings)
    everyone = scope.is_everything
    report_unmapped = everyone or unmapped_too
    for record in records:
        type_mapping = type_mapping_of(record)
        if type_mapping is None:
            if report_unmapped:
                key = record.type_keys()[0] if record.type_keys() else "(none)"
                unmapped.append(Unmapped("type", key, record.id))
            continue
        user_id = mappings.users.get(record.user_id)
        if user_id is None:
            if report_unmapped:
                unmapped.append(Unmapped("user", record.user_id, record.id))
            continue
        cert = type_mapping.monotree
        if not (everyone or scope.has(cert, user_id)) or not is_held(record, policy, today):
            continue
        wanted = desired.get(cert)
        if wanted is None:
            wanted = desired[cert] = {}
        seen = wanted.get(user_id)
        wanted[user_id] = record if seen is None else _latest(seen, record)

    kept_by_removed = _explained_by_removed(
        records, mappings, removed, policy=policy, today=today, scope=scope
    )

    assigns: list[Assign] = []
    renewals: list[Renewal] = []
    drift: list[Drift] = []
    kept: list[KeptNewer] = []
    missing: list[MissingUser] = []

    for cert, wanted in desired.items():
        held_here = holdings.get(cert, {})
        for user, record in wanted.items():
            held = held_here.get(user)
            if held is None or not held.active:
                if user in missing_users:
                    missing.append(MissingUser(user, cert, record.id))
                else:
                    assigns.append(Assign(cert, user, record.issued_on, record.id))
            elif held.issued_on is None:
                pass  # Monotree did not say when it issued this one: leave it, or it
                # would be renewed on every cycle.
            elif held.issued_on < record.issued_on:
                renewals.append(Renewal(cert, user, record.issued_on, held.issued_on, record.id))
            elif held.issued_on > record.issued_on:
                kept.append(KeptNewer(cert, user, held.issued_on, record.issued_on))
            elif held.expiry_known and _drifts(held.expires_on, record.expires_on):
                drift.append(Drift(cert, user, held.expires_on, record.expires_on))

    authoritative = mappings.authoritative_templates()
    mapped_templates = set(mappings.template_ids())
    mapped_users = mappings.mapped_users()
    revokes: list[Revoke] = []
    unmanaged: list[Unmanaged] = []
    owned_active = 0
    left_alone = 0
    people: Tally = {}
    if tally:
        for wanted in desired.values():
            for user in wanted:
                people.setdefault(user, [0, 0, 0])[0] += 1
    owned = Pairs.of(owned)
    for cert, by_user in holdings.items():
        if not scope.has_template(cert):
            continue
        type_mapped = cert in mapped_templates
        owned_here, wanted_here = owned.users_of(cert), desired.get(cert, {})
        for user, held in _in_scope(by_user, scope.users):
            if not held.active:
                continue
            is_owned = user in owned_here
            if not type_mapped and not is_owned:
                continue  # a template certsync neither maps nor ever wrote to
            owned_active += is_owned
            if tally and is_owned:
                people.setdefault(user, [0, 0, 0])[1] += 1
            if user in wanted_here:
                continue
            if (cert, user) in kept_by_removed and (is_owned or cert in authoritative):
                reason = kept_by_removed[(cert, user)]
                if policy.revoke_unmapped:
                    revokes.append(Revoke(cert, user, owned=is_owned, unmapped=True))
                else:
                    unmanaged.append(Unmanaged(cert, user, reason))
            elif type_mapped and not (is_owned or cert in authoritative):
                left_alone += 1
                if tally:
                    people.setdefault(user, [0, 0, 0])[2] += 1
            elif type_mapped and (user in mapped_users or not is_owned):
                # Not owned here means authoritative: it never depended on a user mapping.
                revokes.append(Revoke(cert, user, owned=is_owned))
            elif policy.revoke_unmapped:
                revokes.append(Revoke(cert, user, owned=True, unmapped=True))
            else:
                # The mapping was removed: a configuration change, not an upstream fact.
                unmanaged.append(Unmanaged(cert, user, "user" if type_mapped else "type"))

    the_plan = assembled(
        policy,
        assigns=assigns,
        renewals=renewals,
        revokes=revokes,
        drift=drift,
        kept_newer=kept,
        unmapped=unmapped,
        missing_users=missing,
        rejected=rejected,
        unmanaged=unmanaged,
        desired=sum(len(wanted) for wanted in desired.values()),
        owned_active=owned_active,
        left_alone=left_alone,
    )
    return the_plan, people


def assembled(
    policy: Policy,
    *,
    assigns: Iterable[Assign] = (),
    renewals: Iterable[Renewal] = (),
    revokes: Iterable[Revoke] = (),
    drift: Iterable[Drift] = (),
    kept_newer: Iterable[KeptNewer] = (),
    unmapped: Iterable[Unmapped] = (),
    missing_users: Iterable[MissingUser] = (),
    rejected: Iterable[RejectedRecord] = (),
    unmanaged: Iterable[Unmanaged] = (),
    desired: int = 0,
    owned_active: int = 0,
    left_alone: int = 0,
) -> Plan:
    """A plan of these items, sorted, its revocations held back if the policy forbids
    them: what `plan` returns, and what a plan put back together from people is."""
    revoked = tuple(sorted(revokes))
    return Plan(
        assigns=tuple(sorted(assigns)),
        renewals=tuple(sorted(renewals)),
        revokes=revoked if policy.revoke else (),
        drift=tuple(sorted(drift)),
        kept_newer=tuple(sorted(kept_newer)),
        unmapped=tuple(sorted(unmapped)),
        missing_users=tuple(sorted(missing_users)),
        rejected=tuple(sorted(rejected, key=lambda r: r.index)),
        unmanaged=tuple(sorted(unmanaged)),
        desired=desired,
        owned_active=owned_active,
        left_alone=left_alone,
        held_back_revokes=() if policy.revoke else revoked,
        held_back_reason=None if policy.revoke or not revoked else "policy.revoke is false",
        held_back_kind=None if policy.revoke or not revoked else HoldBack.POLICY,
    )


def _in_scope(
    by_user: Mapping[int, Holding], users: frozenset[int] | None
) -> Iterable[tuple[int, Holding]]:
    """A template's holdings of the users in scope: a few people's are found, not sought
    among 95,000 (a decision made again for those a change touched)."""
    if users is None:
        return by_user.items()
    if len(users) >= len(by_user):
        return ((u, h) for u, h in by_user.items() if u in users)
    return ((u, by_user[u]) for u in users if u in by_user)


def _type_lookup(mappings: Mappings) -> Callable[[CertificationRecord], TypeMapping | None]:
    """The type mapping of a record, found once for each type the records hold: a
    record's type keys depend only on its type id, and the embedded type's slug and id
    (a third of the plan's CPU at 100,000 records)."""
    types = mappings.types
    found: dict[tuple[str | None, str | None, str | None], TypeMapping | None] = {}

    def type_mapping_of(record: CertificationRecord) -> TypeMapping | None:
        ct = record.certification_type
        key = (
            record.certification_type_id,
            None if ct is None else ct.slug,
            None if ct is None else ct.id,
        )
        try:
            return found[key]
        except KeyError:
            mapping = next((types[k] for k in record.type_keys() if k in types), None)
            found[key] = mapping
            return mapping

    return type_mapping_of


def _explained_by_removed(
    records: Iterable[CertificationRecord],
    mappings: Mappings,
    removed: Mappings | None,
    *,
    policy: Policy,
    today: date,
    scope: Scope,
) -> dict[Pair, Literal["type", "user"]]:
    """Pairs a held record would make desired through a removed mapping, and which kind."""
    if removed is None or not (removed.types or removed.users):
        return {}
    out: dict[Pair, Literal["type", "user"]] = {}
    for record in records:
        keys = record.type_keys()
        current = next((mappings.types[k] for k in keys if k in mappings.types), None)
        gone = next((removed.types[k] for k in keys if k in removed.types), None)
        user = mappings.users.get(record.user_id)
        gone_user = removed.users.get(record.user_id)
        if not is_held(record, policy, today):
            continue
        ways: list[tuple[TypeMapping | None, int | None, Literal["type", "user"]]] = [
            (gone, user, "type"),
            (current, gone_user, "user"),
            (gone, gone_user, "type"),
        ]
        for type_mapping, user_id, reason in ways:
            if type_mapping is None or user_id is None:
                continue
            pair = (type_mapping.monotree, user_id)
            if scope.has(*pair):
                out.setdefault(pair, reason)
    return out
