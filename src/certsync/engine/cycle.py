"""One cycle: pull -> load -> read -> plan -> apply. The only place the pieces meet."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from certsync import cyclic_gc
from certsync.actions import HoldBack
from certsync.clients.session import Clients, open_clients
from certsync.engine.apply import apply_requests
from certsync.engine.describe import describe_observation, describe_unchanged, user_labels
from certsync.engine.gather import gather, gather_users
from certsync.engine.imported import imported_mapping_file
from certsync.engine.narrow import carry_decided, decided, keep_decided, last_decided, to_keep
from certsync.engine.observation import Observation
from certsync.engine.pulled import Pulled
from certsync.engine.quiet import QuietCheck, Unchanged, last_quiet, remember_quiet
from certsync.engine.report import Kind, Outcome, PhaseClock, SyncOptions, SyncReport
from certsync.engine.review import digests, reviewed_decision
from certsync.errors import CertsyncError, LeaseLostError, StopRequested
from certsync.mappings_file import MappingFile
from certsync.settings import Settings
from certsync.store import PullDelta, Store, utcnow

log = structlog.get_logger("certsync.engine.cycle")

Progress = Callable[[str], None]

__all__ = ["Clients", "SyncOptions", "SyncReport", "open_clients", "run_sync"]


def _full_due(store: Store, settings: Settings, now: datetime) -> bool:
    last = store.values.get("last_full_at")
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
        else store.lock.held(
            timeout=settings.sync.lock_timeout,
            what=f"the store {store.shown}",
            should_stop=should_stop,
        )
    )
    with lock:
        if not dry:
            # Once per process, under the lock: the only place a sync changes the schema.
            moved = store.upgrade()
            if moved is not None:
                log.info("store.upgraded", from_revision=moved[0], to_revision=moved[1])
            closed, unknown = store.journal.recover()
            if closed or unknown:
                log.warning("sync.recovered", interrupted_runs=closed, unknown_writes=unknown)
            if options.under_lock is not None:
                options.under_lock.before(store)  # e.g. the plan to approve is still held
        now = datetime.now(UTC)
        kind: Kind
        if options.review is not None:
            kind = options.review.mode
        elif options.scope.users is not None:
            kind = "user"  # a sync of some people: their certificates, never a full read
        elif options.force_full or _full_due(store, settings, utcnow()):
            kind = "full"
        else:
            kind = "incremental"
        run_id = uuid.uuid4().hex[:16] if dry else store.journal.start_run(kind)
        structlog.contextvars.bind_contextvars(run_id=run_id)
        report = SyncReport(run_id=run_id, kind=kind, dry_run=dry)
        try:
            # Token files are read again every cycle: a rotated Secret needs no restart.
            clients.reload_credentials()
            mapping_file = imported_mapping_file(settings, store, dry=dry)
            lease = store.lock

            def stopping() -> bool:
                # A lease lost, or not renewed in time (this process was paused, or the
                # database unreachable), stops the cycle before its next write, as a stop
                # does: by then another replica may have taken over.
                return should_stop() or (not dry and not lease.valid())

            # Also asked before every retry of a write: a retry must not outlive the lease.
            with clients.writes_only_while(lambda: not stopping()):
                _cycle(
                    settings=settings,
                    store=store,
                    clients=clients,
                    options=options,
                    report=report,
                    mapping_file=mapping_file,
                    now=now,
                    say=say,
                    should_stop=stopping,
                )
            if not dry and not lease.valid():
                raise LeaseLostError(
                    "the store's writer lease was lost during this cycle (taken by another "
                    "certsync, or not renewed in time): it stopped before its next write; "
                    "what was sent is in the journal"
                )
            if not dry and options.under_lock is not None:
                options.under_lock.after(store, report)  # e.g. record the approval
        except CertsyncError as exc:
            report.error, report.failure = str(exc), exc
            log.error("sync.failed", error=str(exc))
        except BaseException as exc:
            # Interrupted or a fault of certsync's own: recorded as such, never as converged.
            report.error = f"interrupted: {type(exc).__name__}"
            raise
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
                duration=round(report.duration, 3),
                unchanged_since=report.unchanged_since,  # a quiet cycle: nothing decided
                **report.counts(),
            )
            structlog.contextvars.unbind_contextvars("run_id")
    return report


def _finish(store: Store, report: SyncReport) -> None:
    try:
        store.journal.finish_run(
            report.run_id,
            outcome=report.outcome,
            counts=report.counts(),
            requests=report.request_counts,
            error=report.error,
        )
    except CertsyncError as exc:
        # The next start closes this run as interrupted; the report still goes out.
        log.error("sync.finish_not_recorded", error=str(exc))


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
    dry = options.dry_run
    clock = PhaseClock(report.timings)
    today = options.today or now.date()

    # The pull's body (`MadeFrom.dumps`), and whether it was the kept snapshot's.
    pulled_from: list[tuple[str, bool]] = []

    def keep_pull(pulled: Pulled) -> None:
        # The snapshot feeds the report ("since the last pull") and stands for the body
        # it was made from (a 304 to its validators, the same digest), so it is kept as
        # soon as the pull is in, while the reads still wait on Monotree. An unchanged
        # body is the snapshot already.
        if dry:
            return
        pulled_from.append((pulled.made_from.dumps(), pulled.unchanged))
        if pulled.unchanged:
            # Nothing here may read `pulled.pull`: that would decode what a quiet cycle
            # never needs to.
            log.info("sync.pull_unchanged", digest=pulled.made_from.digest[:12])
            store.snapshots.touch()  # as recent as a pull (a webhook's sync reuses it)
            report.pull_delta = PullDelta(0, 0, 0)
        else:
            pull = pulled.pull
            if pulled.merged is not None:  # made of the kept pull: rows and delta known
                m = pulled.merged
                store.snapshots.save_rows(
                    m.kinds, m.rows, made_from=pulled.made_from, prints=pull.prints
                )
                report.pull_delta = m.delta
                pulled.merged = None  # the rows go: the records are the pull's
            else:
                report.pull_delta = store.snapshots.save(
                    pull.records, pull.rejected, made_from=pulled.made_from, prints=pull.prints
                )
            pulled.forget_prints()  # the snapshot's now: not held through the cycle
        clock.lap("snapshot_seconds")

    seen: Observation | Unchanged
    if options.scope.users is not None:
        seen = gather_users(
            store=store,
            clients=clients,
            mapping_file=mapping_file,
            user_ids=options.scope.users,
            now=now,
            say=say,
            lap=clock.lap,
            on_pull=keep_pull,
            file_imported=not dry,
            pull=store.snapshots.recent(options.kept_pull_max_age),
            should_stop=should_stop,
        )
    else:
        # A dry run shows its plan, and a full or reviewed one reads: they always decide.
        may_skip = not dry and options.review is None and options.scope.is_everything
        may_skip = may_skip and report.kind == "incremental"
        quiet = last_quiet(store) if may_skip else None
        seen = gather(
            store=store,
            clients=clients,
            mapping_file=mapping_file,
            full=report.kind == "full",
            also_read=options.review.templates if options.review else frozenset(),
            now=now,
            concurrency=settings.client.concurrency,
            say=say,
            lap=clock.lap,
            on_pull=keep_pull,
            file_imported=not dry,
            quiet=QuietCheck(
                today,
                settings.sync.chunk_size,
                quiet.inputs if quiet else None,
                quiet.ranges_on(now.date()) if quiet else {},
            )
            if may_skip
            else None,
        )
        if isinstance(seen, Unchanged):
            assert quiet is not None
            describe_unchanged(report, seen, quiet)
            remember_quiet(
                store,
                run=report.run_id,
                inputs=quiet.inputs,
                records=quiet.records,
                counts=quiet.counts,
                day=now.date(),
                ranges=seen.count_ranges,
            )
            carry_decided(store)
            return
    describe_observation(report, seen)
    if not dry:
        if seen.listed_users:
            store.users.replace((u.id, u.email, u.name) for u in seen.listed_users)
        for cert, found in seen.read.items():
            template = seen.templates.get(cert)
            count = None if template is None else template.active_users_count
            store.holdings.save_full_read(cert, found, listed_count=count)
    _check_stop(should_stop)
    clock.lap("store_seconds")

    plan_cpu = time.process_time()
    # A decision over everyone, kept by person so the next may be made again for the
    # people who changed alone (`narrow.py`); a reviewed one is the plan a person saw.
    whole = not dry and options.review is None and options.scope.is_everything
    before = last_decided(store) if whole and report.kind == "incremental" else None
    made_from, unchanged = pulled_from[0] if pulled_from else (None, False)
    # A pure function making 100,000 small values and no cycle: the collector walking
    # them (and all the records) as they are made doubled the plan's CPU.
    with cyclic_gc.paused():
        decision, again = decided(
            seen,
            before,
            today,
            scope=options.scope,
            chunk_size=settings.sync.chunk_size,
            # A person reviewed what a reviewed run sends: they are the guard.
            allow_mass_revoke=options.allow_mass_revoke or options.review is not None,
            # A first cycle (nothing owned yet) keeps none: whom it assigns to is decided again.
            by_person=whole and store.holdings.owned_count() > 0,
            delta=report.pull_delta,
            made_from=made_from,
            unchanged=unchanged,
        )
        keep = to_keep(decision, seen, today, made_from) if whole else None
    if again is not None:
        report.decided_again = len(again.monotree)
        log.info("sync.decided_again", people=len(again.monotree), accounts=len(again.natecosmic))
    if options.review is not None:
        decision, report.skipped = reviewed_decision(
            options.review,
            decision,
            seen,
            chunk_size=settings.sync.chunk_size,
            notify=seen.mappings.policy.notify_on_revoke,
        )
    report.plan, report.requests = decision.plan, list(decision.requests)
    held = decision.plan.held_back_kind is HoldBack.MASS_REVOKE and decision.guard_held
    if options.digests or held:
        report.digests = digests(seen)
    if not dry and options.review is None and options.scope.is_everything:
        # A run for everyone decides afresh: a plan it holds back again keeps its id (an
        # operator may be reading it); every other plan still held is superseded.
        if held:
            report.held_plan = store.held.keep(
                report.run_id,
                decision.plan.held_back_reason or "",
                decision.plan.held_back_revokes,
                report.digests,
                kind=(decision.plan.held_back_kind or HoldBack.MASS_REVOKE).value,
            )
        store.held.supersede(by_run=report.run_id, keep=report.held_plan)
    if keep is not None:
        # Before the writes: what it names as written is touched next time, sent or not.
        keep_decided(store, keep)
    report.timings["plan_cpu_seconds"] = round(time.process_time() - plan_cpu, 4)
    clock.lap("plan_seconds")
    report.user_labels = user_labels(store, decision.plan, seen.listed_users)
    log.debug("sync.planned", requests=len(report.requests), **report.counts())
    if decision.plan.held_back_revokes and decision.plan.held_back_reason:
        log.warning(
            "sync.revocations_held_back",
            count=len(decision.plan.held_back_revokes),
            reason=decision.plan.held_back_reason,
        )

    full, inputs, ranges = seen.full, seen.inputs, seen.count_ranges
    records = len(seen.pull.records)
    # The writes need none of what was read: the pull (also one kept for a sync of some
    # people), the holdings and the ownership go before them (10 MB at 100,000 records,
    # at the first full cycle's peak).
    del seen, decision, keep
    if not dry and report.requests:
        say(f"applying {len(report.requests)} write request(s)")
        report.result = apply_requests(
            report.requests,
            writer=clients.monotree,
            journal=store.journal,
            run_id=report.run_id,
            should_stop=should_stop,
            on_progress=lambda done, total: say(f"applied {done}/{total} request(s)"),
            concurrency=settings.client.concurrency,
        )
        clock.lap("apply_seconds")
    if inputs is not None and not report.requests and report.outcome is Outcome.CONVERGED:
        # Nothing to do: a next cycle on the same inputs decides nothing either.
        remember_quiet(
            store,
            run=report.run_id,
            inputs=inputs,
            records=records,
            counts=report.counts(),
            day=now.date(),
            ranges=ranges,
        )
    if full and not dry:
        # A missing template does not make every later cycle full: it is asked for
        # again (one request) and reported on each cycle until its mapping is fixed.
        store.values.set("last_full_at", utcnow().isoformat())


def _check_stop(should_stop: Callable[[], bool]) -> None:
    if should_stop():
        raise StopRequested("stopping: the cycle ends before its next step")
