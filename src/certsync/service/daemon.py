"""`certsync run`: cycles on a schedule, on request, and again after a failure.

The daemon takes the cycle to run and a clock, so it can be driven step by step
(`run_pending`) with a fake clock and no sleeping. The first cycle is full, and
so is every retry of a failed full cycle; `run_sync` decides later ones from
`full_every`. A failed cycle (a wrong token, a missing mapping file, an API
down) does not end the daemon: it is not ready, says why on `/readyz`, and
retries after 1, 2, 4 ... seconds, capped by `CERTSYNC_SCHEDULE__MAX_BACKOFF`.
`request_run(reason, scope)` asks for a cycle now. SIGTERM and SIGINT set one
event that every wait, retry and apply loop checks.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from types import FrameType
from typing import Protocol

import structlog

from certsync.engine.cycle import SyncOptions, SyncReport, open_clients, run_sync
from certsync.engine.report import Outcome
from certsync.engine.scope import Scope
from certsync.errors import ConfigError, LockBusyError
from certsync.people import Person, find_person
from certsync.redaction import Redactor
from certsync.service.admin import AdminToken, admin_routes
from certsync.service.health import health_app
from certsync.service.metrics import Metrics
from certsync.service.runs import RunTicket, Tickets
from certsync.service.schedule import Clock, RunRequest, Schedule, SystemClock
from certsync.service.serve import ServerThread
from certsync.settings import Settings, api_problems, settings_message
from certsync.store import Store

log = structlog.get_logger("certsync.service.daemon")

Cycle = Callable[[SyncOptions], SyncReport]


class StoreProbe(Protocol):
    """What the daemon asks of the store itself: is it there, and how much is owned."""

    def ping(self) -> None: ...

    def owned_count(self) -> int: ...


class _StoreProbe:
    """The real store, as the daemon sees it."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def ping(self) -> None:
        self._store.ping()

    def owned_count(self) -> int:
        return self._store.holdings.owned_count()


@dataclass
class Health:
    """What /healthz and /readyz answer from; written by the cycles, read by the HTTP thread."""

    started_at: float
    last_run_at: float | None = None
    last_success_at: float | None = None
    last_outcome: str | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    runs: int = 0


class Daemon:
    """Runs cycles when they are due or asked for, and keeps the health they report."""

    def __init__(
        self,
        settings: Settings,
        *,
        cycle: Cycle,
        store: StoreProbe,
        clock: Clock | None = None,
        stop: threading.Event | None = None,
        metrics: Metrics | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.stop = stop or threading.Event()
        self.metrics = metrics or Metrics()
        self.redactor = redactor or Redactor()
        self.health = Health(started_at=self.clock.now())
        self.schedule = Schedule(settings.schedule, self.clock)
        self.tickets = Tickets()
        self._cycle = cycle
        self._store = store
        # Full until a full cycle succeeds: a failed one is retried as full.
        self._full_pending = True

    @property
    def interval(self) -> float:
        return self.schedule.gap

    def request_run(self, reason: str, scope: Scope | None = None) -> RunTicket:
        """Ask for a cycle now (within `scope`; everything by default); its ticket."""
        scope = scope or Scope()
        users = None if scope.users is None else tuple(sorted(scope.users))
        ticket = self.tickets.open(reason, users, self.clock.now())
        log.info("daemon.run_requested", reason=reason, users=users, ticket=ticket.id)
        self.schedule.request(RunRequest(reason, scope, ticket.id))
        return ticket

    def run_pending(self) -> SyncReport | None:
        """Run one cycle if one is due or asked for; its report, or None."""
        if self.stop.is_set():
            return None
        request = self.schedule.take()
        if request is None:
            return None
        whole = request.scope.is_everything
        options = SyncOptions(force_full=self._full_pending and whole, scope=request.scope)
        self.tickets.update(request.ticket, state="running", started_at=self.clock.now())
        if whole:
            self.health.last_run_at = self.clock.now()
        try:
            report = self._cycle(options)
        except LockBusyError as exc:
            # Another certsync applies against this store: not a failure of ours.
            log.warning("daemon.lock_busy", error=str(exc))
            self._closed(request, None, str(exc))
            if whole:
                self.health.last_outcome = "lock-busy"
                self.schedule.ran(failures=0)
            return None
        except Exception as exc:
            log.error(
                "daemon.cycle_failed", error=str(exc), exc_info=not isinstance(exc, ConfigError)
            )
            self.metrics.runs.labels("error").inc()
            self._closed(request, None, str(exc))
            if whole:
                self._failed(str(exc))
            return None
        self._closed(request, report, report.error)
        if whole:
            self._finished(report, whole=whole)
        else:
            # Some people's sync: it says nothing of the daemon's health, and the
            # scheduled cycles keep their times.
            self.metrics.observe_run(report, owned=None, finished_at=self.clock.now(), whole=False)
        return report

    def _closed(self, request: RunRequest, report: SyncReport | None, error: str | None) -> None:
        if report is None:
            self.tickets.update(
                request.ticket, state="failed", finished_at=self.clock.now(), error=error
            )
            return
        self.tickets.update(
            request.ticket,
            state="failed" if report.outcome is Outcome.ERROR else "done",
            finished_at=self.clock.now(),
            run_id=report.run_id,
            outcome=str(report.outcome),
            error=error,
            counts={k: v for k, v in report.counts().items() if v},
        )

    def _finished(self, report: SyncReport, *, whole: bool) -> None:
        h = self.health
        h.runs += 1
        h.last_outcome = report.outcome
        if report.error is None and whole:
            self._full_pending = False
        try:
            owned = self._store.owned_count()
        except Exception as exc:  # the cycle is over; a store gone now shows on /readyz
            log.warning("daemon.owned_count_failed", error=str(exc))
            owned = None
        self.metrics.observe_run(report, owned=owned, finished_at=self.clock.now())
        if report.outcome in (Outcome.ERROR, Outcome.PARTIAL):
            self._failed(report.error or _partial_reason(report))
            return
        if report.outcome.succeeded:
            h.last_success_at = self.clock.now()
        h.last_error = None
        if h.consecutive_failures:
            log.info("daemon.recovered", after_failures=h.consecutive_failures)
            h.consecutive_failures = 0
            self.metrics.failures.set(0)
        self.schedule.ran(failures=0)

    def _failed(self, error: str) -> None:
        h = self.health
        h.consecutive_failures += 1
        h.last_error = error
        self.metrics.failures.set(h.consecutive_failures)
        self.schedule.ran(failures=h.consecutive_failures)
        log.warning(
            "daemon.retrying",
            failures=h.consecutive_failures,
            next_in=round(self.schedule.seconds_to_next(), 1),
            full=self._full_pending,
        )

    def readiness(self) -> tuple[bool, str]:
        h = self.health
        try:
            self._store.ping()
        except Exception as exc:
            return False, f"store unreachable: {type(exc).__name__}"
        if h.consecutive_failures:
            # A failure stays visible until a cycle succeeds: never ready on an old success.
            return False, self.redactor(
                f"the last {h.consecutive_failures} cycle(s) failed; the last error: {h.last_error}"
            )
        if h.last_success_at is None:
            return False, "no successful sync yet"
        age = self.clock.now() - h.last_success_at
        if age > 2 * self.interval:
            return False, f"last successful sync {age:.0f}s ago (more than twice the interval)"
        return True, "ok"

    def loop(self) -> None:
        """Run cycles until asked to stop: each when due, or at once when requested."""
        while not self.stop.is_set():
            try:
                self.run_pending()
            except Exception as exc:  # never let the one cycle thread die quietly
                log.error("daemon.step_failed", error=str(exc), exc_info=True)
                self._failed(f"internal error: {type(exc).__name__}: {exc}")
            self.clock.wait(self.schedule.wake, self.schedule.seconds_to_next())
            self.schedule.wake.clear()

    def request_stop(self, signum: int | None = None, _frame: FrameType | None = None) -> None:
        if not self.stop.is_set():
            log.info("daemon.stopping", signal=signal.Signals(signum).name if signum else None)
        self.stop.set()
        self.schedule.wake.set()


def _partial_reason(report: SyncReport) -> str:
    failed = report.counts()["failed_requests"]
    missing = report.missing_templates
    parts = [f"{failed} write request(s) failed"] if failed else []
    if missing:
        parts.append(f"mapped template(s) missing in Monotree: {', '.join(map(str, missing))}")
    return "; ".join(parts) or "the cycle stopped before it finished"


def run_daemon(settings: Settings, redactor: Redactor) -> bool:
    """The real thing: the store, both clients, the health listener, signals, the loop.

    True when the daemon stopped cleanly: its last cycle ended within the stop timeout.
    """
    # Only what no cycle can change ends the daemon: the environment. A token file
    # or mapping file that is missing now may be mounted in a moment.
    problems = api_problems(settings, tokens=False)
    if problems:
        raise ConfigError(settings_message(problems))
    stop = threading.Event()
    with ExitStack() as stack:
        store = Store(settings.database_url)
        stack.callback(store.close)
        clients = stack.enter_context(open_clients(settings, stop=stop, redactor=redactor))

        def cycle(options: SyncOptions) -> SyncReport:
            return run_sync(settings, store, clients, options, should_stop=stop.is_set)

        daemon = Daemon(
            settings, cycle=cycle, store=_StoreProbe(store), stop=stop, redactor=redactor
        )
        clients.counter.observers.append(daemon.metrics.observe_request)
        clients.counter.retry_observers.append(daemon.metrics.observe_retry)
        signal.signal(signal.SIGTERM, daemon.request_stop)
        signal.signal(signal.SIGINT, daemon.request_stop)
        server = _serve(settings, daemon, store, redactor)
        if server is not None:
            stack.callback(server.stop)
        runner = threading.Thread(target=daemon.loop, name="certsync-cycles", daemon=True)
        runner.start()
        log.info(
            "daemon.started",
            interval=settings.schedule.interval,
            cron=settings.schedule.cron,
            full_every=settings.schedule.full_every,
            health_port=server.port() if server else None,
        )
        while not stop.wait(1.0):
            if not runner.is_alive():  # cannot happen by design; if it does, say so and exit
                log.error("daemon.cycle_thread_died")
                stop.set()
                return False
        bound = settings.schedule.stop_timeout
        runner.join(bound)
        finished = not runner.is_alive()
        if not finished:
            log.error("daemon.stop_timeout", bound=bound)
    log.info("daemon.stopped", clean=finished)
    return finished


def _serve(
    settings: Settings, daemon: Daemon, store: Store, redactor: Redactor
) -> ServerThread | None:
    listener = settings.http
    if not listener.port:
        return None
    token = AdminToken(listener, redactor)
    admin = None
    if token.configured:

        def find(asked: Sequence[str]) -> list[Person]:
            by_email = store.users.by_email()
            users = store.mappings.users()
            return [find_person(a, users, by_email) for a in asked]

        admin = admin_routes(daemon, token, find)
    server = ServerThread([(health_app(daemon, admin), listener.port)], host=listener.host)
    try:
        server.start()
    except RuntimeError as exc:
        raise ConfigError(f"health listener on {listener.host}:{listener.port}: {exc}") from None
    return server


__all__ = ["Daemon", "run_daemon"]
