"""One cycle: pull -> load -> read -> plan -> apply. The only place the pieces meet."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.exc import SQLAlchemyError

from certsync import plan as planner
from certsync.apply import apply_requests
from certsync.clients import Clients, open_clients
from certsync.errors import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_GUARD,
    CertsyncError,
    StopRequested,
)
from certsync.holders import read_holders
from certsync.mappings_file import MappingFile, load_mapping_file
from certsync.models import (
    Holding,
    Mappings,
    Plan,
    Pull,
    UserMapping,
    resolve_mappings,
)
from certsync.monotree import Template, User
from certsync.settings import Settings
from certsync.store import Store, utcnow
from certsync.sync_report import Kind, SyncOptions, SyncReport, type_keys

log = structlog.get_logger("certsync.sync")

Progress = Callable[[str], None]

__all__ = ["Clients", "SyncOptions", "SyncReport", "open_clients", "run_sync"]


def _full_due(store: Store, settings: Settings, now: datetime) -> bool:
    last = store.get_setting("last_full_at")
    if last is None:
        return True
    return now - datetime.fromisoformat(last) >= timedelta(seconds=settings.schedule.full_every)


def run_sync(
    settings: Settings,
    store: Store,
    clients: Clients,
    options: SyncOptions | None = None,
    *,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> SyncReport:
    """One whole cycle. Errors a user can cause come back in the report, never as a traceback.

    A dry run (and so `certsync plan`) writes nothing to the store: the mapping
    file is read in memory, no run is recorded and nothing read is kept.
    """
    options = options or SyncOptions()
    say = progress or (lambda _msg: None)
    started = time.monotonic()
    dry = options.dry_run
    # The daemon shares one counter across cycles: a report counts its own requests.
    counted_before = clients.counter.snapshot()
    for name, api in (("natecosmic", settings.natecosmic), ("monotree", settings.monotree)):
        if not api.verify_tls:
            log.warning(
                "http.tls_verification_off",
                api=name,
                setting=f"CERTSYNC_{name.upper()}__VERIFY_TLS",
            )
    lock: AbstractContextManager[Any] = (
        nullcontext()
        if dry
        else store.lock.held(timeout=settings.sync.lock_timeout, what=f"the store {store.shown}")
    )
    with lock:
        if not dry:
            closed, unknown = store.recover()
            if closed or unknown:
                log.warning("sync.recovered", interrupted_runs=closed, unknown_writes=unknown)
        now = datetime.now(UTC)
        full = options.force_full or _full_due(store, settings, utcnow())
        kind: Kind = "full" if full else "incremental"
        run_id = uuid.uuid4().hex[:16] if dry else store.start_run(kind)
        structlog.contextvars.bind_contextvars(run_id=run_id)
        report = SyncReport(run_id=run_id, kind=kind, dry_run=dry)
        try:
            # Token files are read again every cycle: a rotated Secret needs no restart.
            clients.reload_credentials()
            mapping_file = (
                None
                if settings.mappings_file is None
                else load_mapping_file(settings.mappings_file)
            )
            if mapping_file is not None and not dry:
                summary = store.import_mappings(mapping_file, prune=True)
                if summary.changed:
                    log.info("mappings.imported", **_summary_fields(summary))
            _cycle(
                settings=settings,
                store=store,
                clients=clients,
                options=options,
                report=report,
                mapping_file=mapping_file,
                now=now,
                say=say,
                should_stop=should_stop,
            )
        except CertsyncError as exc:
            report.error = str(exc)
            report.exit_code = exc.exit_code
            log.error("sync.failed", error=str(exc))
        except SQLAlchemyError as exc:
            report.error = f"the store failed: {getattr(exc, 'orig', None) or exc}"
            report.exit_code = EXIT_CONFIG
            log.error("sync.failed", error=report.error)
        finally:
            report.request_counts = {
                key: n - counted_before.get(key, 0)
                for key, n in clients.counter.snapshot().items()
                if n > counted_before.get(key, 0)
            }
            report.duration = time.monotonic() - started
            if not dry:
                _finish(store, report)
            # The one line a container's log keeps of each cycle (a terminal shows the table).
            log.info(
                "sync.finished",
                kind=kind,
                outcome=report.outcome,
                exit_code=report.exit_code,
                duration=round(report.duration, 3),
                **report.counts(),
            )
            structlog.contextvars.unbind_contextvars("run_id")
    return report


def _finish(store: Store, report: SyncReport) -> None:
    try:
        store.finish_run(
            report.run_id,
            outcome=report.outcome,
            exit_code=report.exit_code,
            counts=report.counts(),
            requests=report.request_counts,
            error=report.error,
        )
    except (CertsyncError, SQLAlchemyError) as exc:
        # The next start closes this run as interrupted; the report still goes out.
        log.error("sync.finish_not_recorded", error=str(exc))


@dataclass(frozen=True)
class _MonotreeRead:
    """What the background read of Monotree brought: its templates and their holders."""

    templates: dict[int, Template]
    holdings: dict[int, dict[int, Holding]]
    gone: list[int]


def _mappings(
    store: Store, mapping_file: MappingFile | None, by_email: dict[str, int]
) -> tuple[Mappings, list[UserMapping]]:
    if mapping_file is None:
        return resolve_mappings(
            store.type_mappings(), store.user_mappings(), store.policy(), by_email
        )
    # The file is what the store holds after its import (with prune): a dry run
    # uses it as it is, without importing it.
    return resolve_mappings(mapping_file.types, mapping_file.users, mapping_file.policy, by_email)


def _cycle(
    *,
    settings: Settings,
    store: Store,
    clients: Clients,
    options: SyncOptions,
    report: SyncReport,
    mapping_file: MappingFile | None,
    now: datetime,
    say: Progress,
    should_stop: Callable[[], bool],
) -> None:
    today = options.today or now.date()
    full = report.kind == "full"
    dry = options.dry_run

    clock = _PhaseClock(report.timings)
    mappings, unresolved = _mappings(store, mapping_file, store.monotree_users_by_email())
    has_email_users = (
        any(u.monotree_email for u in mapping_file.users)
        if mapping_file is not None
        else store.has_email_mappings()
    )
    missing_users: frozenset[int] = frozenset()
    listed_users: list[User] = []
    if has_email_users and (full or (unresolved and store.monotree_user_ids() is None)):
        say("reading Monotree's user list for email mappings")
        listed_users = clients.monotree.list_users()
        if not dry:
            store.replace_monotree_users((u.id, u.email, u.name) for u in listed_users)
        by_email = {u.email.strip().lower(): u.id for u in listed_users if u.email}
        mappings, unresolved = _mappings(store, mapping_file, by_email)
        # Only a list read in this very cycle may call a user missing: an older
        # one has not seen today's new hires.
        missing_users = frozenset(set(mappings.users.values()) - {u.id for u in listed_users})
    report.unresolved_emails = sorted(str(u.monotree_email) for u in unresolved)

    mapped = list(mappings.template_ids())
    owned = store.owned_pairs()
    # Templates certsync wrote to whose type mapping is gone: their owned holdings
    # are reported as unmanaged (or revoked, with policy.revoke_unmapped).
    unmapped_owned = sorted({cert for cert, _ in owned} - set(mapped))
    states = None if full else store.template_states()
    abandon = threading.Event()
    clock.lap("load_seconds")

    def read_monotree() -> _MonotreeRead:
        # The template list is read every cycle: it proves the token and the URL,
        # and says which mapped templates were deleted or unpublished.
        listed = {t.id: t for t in clients.monotree.list_templates()}
        present = [c for c in mapped if c in listed]
        if full:
            extra = [c for c in unmapped_owned if c in listed]
            to_read = present + (extra if mappings.policy.revoke_unmapped else [])
        else:
            assert states is not None
            to_read = [c for c in present if c not in states or states[c].dirty]
        read, gone = read_holders(
            clients.monotree,
            to_read,
            concurrency=settings.client.concurrency,
            now=now,
            abandon=abandon,
        )
        return _MonotreeRead(listed, read, gone)

    # The Monotree reads and the pull do not depend on each other: the reads go out
    # first, in the background, and the pull is made and parsed while they wait.
    say("pulling certifications; reading Monotree's templates and holders")
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="read") as background:
        reading = background.submit(read_monotree)
        try:
            try:
                pull: Pull = clients.natecosmic.list_certifications()
            finally:
                clock.lap("pull_seconds")
            if not dry:
                # The snapshot only feeds the report ("since the last pull"), so it is
                # kept as soon as the pull is in, while the reads still wait on Monotree.
                report.pull_delta = store.save_pull(pull.records)
                clock.lap("snapshot_seconds")
        except BaseException:
            abandon.set()
            raise
        monotree = reading.result()
    clock.lap("read_seconds")
    report.pull_records = len(pull.records)
    log.info("sync.pulled", records=len(pull.records), rejected=len(pull.rejected))
    listed = monotree.templates
    read = monotree.holdings
    report.templates_read = sorted(read)
    report.type_keys = type_keys(mappings)
    report.missing_templates = sorted({c for c in mapped if c not in listed} | set(monotree.gone))
    report.unpublished_templates = [c for c in mapped if c in listed and not listed[c].is_published]
    report.template_titles = {
        c: t.title for c, t in listed.items() if c in set(mapped) | set(unmapped_owned)
    }
    for cert in report.missing_templates:
        log.warning(
            "sync.template_missing",
            certificate_id=cert,
            mapped_from=report.type_keys.get(cert, []),
        )
    for cert in report.unpublished_templates:
        log.warning("sync.template_unpublished", certificate_id=cert, title=listed[cert].title)
    if not dry:
        for cert, found in read.items():
            store.save_full_read(cert, found)
    _check_stop(should_stop)
    known = [c for c in [*mapped, *unmapped_owned] if c not in read and c in listed]
    holdings = store.known_holdings(known)
    holdings.update(read)
    mappings = _without_templates(mappings, report.missing_templates)

    clock.lap("store_seconds")
    plan_cpu = time.process_time()
    the_plan = planner.plan(
        pull.records,
        mappings,
        holdings,
        owned,
        today,
        rejected=pull.rejected,
        missing_users=missing_users,
    )
    the_plan = planner.guard_revokes(
        the_plan,
        mappings.policy,
        pull_empty=not pull.records,
        allow_mass_revoke=options.allow_mass_revoke,
    )
    report.plan = the_plan
    report.requests = planner.write_requests(
        the_plan,
        chunk_size=settings.sync.chunk_size,
        notify_on_revoke=mappings.policy.notify_on_revoke,
    )
    report.timings["plan_cpu_seconds"] = round(time.process_time() - plan_cpu, 4)
    clock.lap("plan_seconds")
    report.user_labels = _user_labels(store, the_plan, listed_users)
    log.debug("sync.planned", requests=len(report.requests), **report.counts())
    if the_plan.held_back_revokes and the_plan.held_back_reason:
        log.warning(
            "sync.revocations_held_back",
            count=len(the_plan.held_back_revokes),
            reason=the_plan.held_back_reason,
        )

    if not dry and report.requests:
        say(f"applying {len(report.requests)} write request(s)")
        report.result = apply_requests(
            report.requests,
            writer=clients.monotree,
            journal=store,
            run_id=report.run_id,
            should_stop=should_stop,
            on_progress=lambda done, total: say(f"applied {done}/{total} request(s)"),
            concurrency=settings.client.concurrency,
        )
        clock.lap("apply_seconds")
    if full and not dry:
        # A missing template does not make every later cycle full: it is asked for
        # again (one request) and reported on each cycle until its mapping is fixed.
        store.set_setting("last_full_at", utcnow().isoformat())

    guard_held = bool(the_plan.held_back_revokes) and the_plan.held_back_reason not in (
        None,
        "policy.revoke is false",
    )
    if guard_held:
        report.exit_code = EXIT_GUARD
    elif report.result.failures or report.missing_templates or report.result.stopped:
        report.exit_code = EXIT_FAILED


def _without_templates(mappings: Mappings, missing: list[int]) -> Mappings:
    if not missing:
        return mappings
    types = {k: t for k, t in mappings.types.items() if t.monotree not in missing}
    return Mappings(types=types, users=mappings.users, policy=mappings.policy)


def _user_labels(store: Store, the_plan: Plan, listed: list[User]) -> dict[int, str]:
    """Emails or names of the users a plan shows, from this cycle's list or the user cache."""
    ids = {
        item.user_id
        for items in (
            the_plan.assigns,
            the_plan.renewals,
            the_plan.revokes,
            the_plan.held_back_revokes,
            the_plan.unmanaged,
            the_plan.missing_users,
            the_plan.drift,
        )
        for item in items
    }
    labels = store.user_labels(ids)
    labels.update(
        {u.id: u.email or u.name or "" for u in listed if u.id in ids and (u.email or u.name)}
    )
    return labels


class _PhaseClock:
    """Wall seconds of each phase of a cycle, for the report and the benchmark."""

    def __init__(self, into: dict[str, float]) -> None:
        self._into = into
        self._last = time.monotonic()

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self._into[name] = round(self._into.get(name, 0.0) + now - self._last, 4)
        self._last = now


def _check_stop(should_stop: Callable[[], bool]) -> None:
    if should_stop():
        raise StopRequested("stopping: the cycle ends before its next step")


def _summary_fields(summary: Any) -> dict[str, Any]:
    return {k: getattr(summary, k) for k in summary.__slots__}
