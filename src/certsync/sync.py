"""One cycle: pull -> load -> read -> plan -> apply. The only place the pieces meet."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import structlog
from sqlalchemy.exc import SQLAlchemyError

from certsync import plan as planner
from certsync.apply import apply_requests
from certsync.errors import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_GUARD,
    EXIT_OK,
    CertsyncError,
    ConfigError,
    StopRequested,
)
from certsync.holders import read_holders
from certsync.http import ApiHttp, Pacer, RequestCounter, build_client
from certsync.mappings_file import load_mapping_file
from certsync.models import ApplyResult, Mappings, Plan, Pull, WriteRequest
from certsync.monotree import MonotreeClient
from certsync.natecosmic import NatecosmicClient
from certsync.settings import Settings, require_api
from certsync.store import PullDelta, Store, utcnow

log = structlog.get_logger("certsync.sync")

Kind = Literal["full", "incremental"]
Progress = Callable[[str], None]


@dataclass
class Clients:
    """Both API clients and the counter they share."""

    natecosmic: NatecosmicClient
    monotree: MonotreeClient
    counter: RequestCounter


@contextmanager
def open_clients(
    settings: Settings,
    counter: RequestCounter | None = None,
    *,
    stop: threading.Event | None = None,
) -> Iterator[Clients]:
    """Both clients, sharing one counter; `stop` makes waits and retries end early."""
    counter = counter if counter is not None else RequestCounter()
    with ExitStack() as stack:

        def session(name: Literal["natecosmic", "monotree"]) -> ApiHttp:
            base_url, token = require_api(settings, name)
            api = settings.natecosmic if name == "natecosmic" else settings.monotree
            return ApiHttp(
                api=name,
                base_url=base_url,
                token=token,
                client=stack.enter_context(build_client(settings.client, verify=api.verify_tls)),
                settings=settings.client,
                counter=counter,
                pacer=Pacer(max_per_minute=api.max_requests_per_minute, stop=stop),
                stop=stop,
            )

        natecosmic, monotree = session("natecosmic"), session("monotree")
        yield Clients(NatecosmicClient(natecosmic), MonotreeClient(monotree), counter)


@dataclass(frozen=True)
class SyncOptions:
    dry_run: bool = False
    force_full: bool = False
    allow_mass_revoke: bool = False
    today: date | None = None


@dataclass
class SyncReport:
    """Everything one cycle did, for the table, the JSON document, the journal and metrics."""

    run_id: str
    kind: Kind
    dry_run: bool
    plan: Plan = field(default_factory=Plan)
    requests: list[WriteRequest] = field(default_factory=list)
    result: ApplyResult = field(default_factory=ApplyResult)
    request_counts: dict[str, int] = field(default_factory=dict)
    pull_records: int = 0
    pull_delta: PullDelta | None = None
    templates_read: list[int] = field(default_factory=list)
    missing_templates: list[int] = field(default_factory=list)
    unresolved_emails: list[str] = field(default_factory=list)
    error: str | None = None
    exit_code: int = EXIT_OK
    duration: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def outcome(self) -> str:
        if self.error is not None:
            return "error"
        if self.exit_code == EXIT_GUARD:
            return "held-back"
        if self.exit_code == EXIT_FAILED:
            return "partial"
        return "dry-run" if self.dry_run else "converged"

    def counts(self) -> dict[str, int]:
        p = self.plan
        return {
            "assign": len(p.assigns),
            "renew": len(p.renewals),
            "revoke": len(p.revokes),
            "held_back": len(p.held_back_revokes),
            "drift": len(p.drift),
            "kept_newer": len(p.kept_newer),
            "not_owned_left_alone": p.left_alone,
            "unmapped": len(p.unmapped),
            "rejected": len(p.rejected),
            "missing_users": len(p.missing_users),
            "missing_templates": len(self.missing_templates),
            "unresolved_emails": len(self.unresolved_emails),
            "write_requests": len(self.requests),
            "failed_requests": len(self.result.failures),
        }


def _full_due(store: Store, settings: Settings, now: datetime) -> bool:
    last = store.get_setting("last_full_at")
    if last is None:
        return True
    return now - datetime.fromisoformat(last) >= timedelta(seconds=settings.schedule.full_every)


def _refresh_users(store: Store, clients: Clients) -> None:
    users = clients.monotree.list_users()
    store.replace_monotree_users((u.id, u.email, u.name) for u in users)
    log.info("sync.users_refreshed", users=len(users))


def _without_templates(mappings: Mappings, missing: list[int]) -> Mappings:
    if not missing:
        return mappings
    types = {k: t for k, t in mappings.types.items() if t.monotree not in missing}
    return Mappings(types=types, users=mappings.users, policy=mappings.policy)


def run_sync(
    settings: Settings,
    store: Store,
    clients: Clients,
    options: SyncOptions = SyncOptions(),
    *,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> SyncReport:
    """One whole cycle. Errors a user can cause come back in the report, never as a traceback."""
    say = progress or (lambda _msg: None)
    started = time.monotonic()
    # The daemon shares one counter across cycles: a report counts its own requests.
    counted_before = clients.counter.snapshot()
    for name, api in (("natecosmic", settings.natecosmic), ("monotree", settings.monotree)):
        if not api.verify_tls:
            log.warning(
                "http.tls_verification_off",
                api=name,
                setting=f"CERTSYNC_{name.upper()}__VERIFY_TLS",
            )
    if settings.mappings_file is not None:
        mapping_file = load_mapping_file(settings.mappings_file)
        summary = store.import_mappings(mapping_file, prune=True)
        if summary.changed:
            log.info("mappings.imported", **_summary_fields(summary))

    lock: Any = (
        nullcontext()
        if options.dry_run
        else store.lock.held(timeout=settings.sync.lock_timeout, what=f"the store {store.url}")
    )
    with lock:
        if not options.dry_run:
            closed, unknown = store.recover()
            if closed or unknown:
                log.warning("sync.recovered", interrupted_runs=closed, unknown_writes=unknown)
        now = datetime.now(UTC)
        full = options.force_full or _full_due(store, settings, utcnow())
        kind: Kind = "full" if full else "incremental"
        run_id = store.start_run("dry" if options.dry_run else kind)
        structlog.contextvars.bind_contextvars(run_id=run_id)
        report = SyncReport(run_id=run_id, kind=kind, dry_run=options.dry_run)
        try:
            _cycle(
                settings=settings,
                store=store,
                clients=clients,
                options=options,
                report=report,
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
            try:
                store.finish_run(
                    run_id,
                    outcome=report.outcome,
                    exit_code=report.exit_code,
                    counts=report.counts(),
                    requests=report.request_counts,
                    error=report.error,
                )
            except (CertsyncError, SQLAlchemyError) as exc:
                # The next start closes this run as interrupted; the report still goes out.
                log.error("sync.finish_not_recorded", error=str(exc))
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


def _cycle(
    *,
    settings: Settings,
    store: Store,
    clients: Clients,
    options: SyncOptions,
    report: SyncReport,
    now: datetime,
    say: Progress,
    should_stop: Callable[[], bool],
) -> None:
    today = options.today or now.date()
    full = report.kind == "full"

    clock = _PhaseClock(report.timings)
    mappings, unresolved = store.mappings()
    has_email_users = store.has_email_mappings()
    missing_users: frozenset[int] = frozenset()
    if has_email_users and (full or (unresolved and store.monotree_user_ids() is None)):
        say("reading Monotree's user list for email mappings")
        _refresh_users(store, clients)
        mappings, unresolved = store.mappings()
        # Only a list read in this very cycle may call a user missing: an older
        # one has not seen today's new hires.
        listed = store.monotree_user_ids() or set()
        missing_users = frozenset(set(mappings.users.values()) - listed)
    report.unresolved_emails = sorted(str(u.monotree_email) for u in unresolved)

    templates = list(mappings.template_ids())
    if full:
        to_read = templates
    else:
        states = store.template_states()
        to_read = [c for c in templates if c not in states or states[c].dirty]
    clock.lap("load_seconds")

    # The pull and the holder reads do not depend on each other: the reads go out
    # first, in the background, and the pull is made and parsed while they wait.
    say(
        f"pulling certifications; reading holders of {len(to_read)} of {len(templates)} template(s)"
    )
    stop_reading = threading.Event()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="read") as background:
        reading = background.submit(
            read_holders,
            clients.monotree,
            to_read,
            concurrency=settings.client.concurrency,
            now=now,
            abandon=stop_reading,
        )
        try:
            try:
                pull: Pull = clients.natecosmic.list_certifications()
            finally:
                clock.lap("pull_seconds")
            if not options.dry_run:
                # The snapshot only feeds the report ("since the last pull"), so it is
                # kept as soon as the pull is in, while the reads still wait on Monotree.
                report.pull_delta = store.save_pull(pull.records)
                clock.lap("snapshot_seconds")
        except BaseException:
            stop_reading.set()
            raise
        read, missing = reading.result()
    clock.lap("read_seconds")
    report.pull_records = len(pull.records)
    log.info("sync.pulled", records=len(pull.records), rejected=len(pull.rejected))
    report.templates_read = sorted(read)
    report.missing_templates = missing
    for cert in missing:
        log.warning("sync.template_missing", certificate_id=cert)
    if not options.dry_run:
        for cert, found in read.items():
            store.save_full_read(cert, found)
    _check_stop(should_stop)
    holdings = store.known_holdings(c for c in templates if c not in read and c not in missing)
    holdings.update(read)
    mappings = _without_templates(mappings, missing)

    clock.lap("store_seconds")
    plan_cpu = time.process_time()
    the_plan = planner.plan(
        pull.records,
        mappings,
        holdings,
        store.owned_pairs(),
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
    log.info("sync.planned", requests=len(report.requests), **report.counts())
    if the_plan.held_back_revokes and the_plan.held_back_reason:
        log.warning(
            "sync.revocations_held_back",
            count=len(the_plan.held_back_revokes),
            reason=the_plan.held_back_reason,
        )

    if not options.dry_run and report.requests:
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
    if full and not options.dry_run:
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


def check_config(settings: Settings) -> None:
    """Fail early, with the variable's name, when an API setting is missing."""
    if settings.mappings_file is not None and not settings.mappings_file.exists():
        raise ConfigError(
            f"mapping file {settings.mappings_file} not found (CERTSYNC_MAPPINGS_FILE; "
            "set it to an empty value to use the mappings already in the store)"
        )
    require_api(settings, "natecosmic")
    require_api(settings, "monotree")
