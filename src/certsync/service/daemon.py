"""`certsync run`: syncs on a schedule, health and metrics over HTTP, graceful stop.

APScheduler runs one job, one instance at a time, coalescing missed runs. The
first cycle is full, and so is every retry of a failed full cycle; `run_sync`
decides later ones from `full_every`. A failed cycle (a wrong token, a missing
mapping file, an API down) does not end the daemon: it is not ready, says why
on `/readyz`, and retries after 1, 2, 4 ... seconds, capped by
`CERTSYNC_SCHEDULE__MAX_BACKOFF` (30 s). SIGTERM and SIGINT set one event that
every wait, retry and apply loop checks.
"""

from __future__ import annotations

import signal
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any

import structlog
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from certsync.engine.cycle import Clients, SyncOptions, SyncReport, open_clients, run_sync
from certsync.errors import EXIT_FAILED, EXIT_OK, ConfigError, LockBusyError
from certsync.redaction import REDACTOR
from certsync.service.metrics import Metrics
from certsync.service.serve import ServerThread
from certsync.settings import Settings, api_problems, settings_message
from certsync.store import Store

log = structlog.get_logger("certsync.service.daemon")

JOB_ID = "certsync-sync"


@dataclass
class Health:
    """What /healthz and /readyz answer from; written by the job, read by the HTTP thread."""

    started_at: float
    last_run_at: float | None = None
    last_success_at: float | None = None
    last_outcome: str | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    runs: int = 0


RETRY_BASE = 1.0


def backoff_seconds(failures: int, cap: float, base: float = RETRY_BASE) -> float:
    """The wait after `failures` failed cycles in a row: base, then doubling, never over cap."""
    return float(min(cap, base * (2 ** min(max(failures, 1) - 1, 30))))


class Daemon:
    """One long-running certsync: a scheduler, the clients, the store and a health listener."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stop = threading.Event()
        self.health = Health(started_at=time.time())
        self.metrics = Metrics()
        self._idle = threading.Event()
        self._idle.set()
        self._stack = ExitStack()
        self._scheduler = BackgroundScheduler(timezone=UTC)
        # Full until a full cycle succeeds: a failed one is retried as full.
        self._full_pending = True
        self.store: Store | None = None
        self.clients: Clients | None = None
        self.server: ServerThread | None = None
        self.interval = self._expected_gap()

    # --- set-up -----------------------------------------------------------------

    def _trigger(self) -> Any:
        schedule = self.settings.schedule
        jitter = int(schedule.jitter) or None
        if schedule.cron:
            try:
                trigger = CronTrigger.from_crontab(schedule.cron, timezone=UTC)
            except ValueError as exc:
                raise ConfigError(f"CERTSYNC_SCHEDULE__CRON: {exc}") from None
            trigger.jitter = jitter
            return trigger
        return IntervalTrigger(seconds=schedule.interval, jitter=jitter, timezone=UTC)

    def _expected_gap(self) -> float:
        """Seconds between two scheduled runs: readiness allows twice that since a success."""
        trigger = self._trigger()
        if isinstance(trigger, IntervalTrigger):
            return float(self.settings.schedule.interval)
        now = datetime.now(UTC)
        first = trigger.get_next_fire_time(None, now)
        second = trigger.get_next_fire_time(first, first + timedelta(seconds=1))
        return max(1.0, (second - first).total_seconds()) if first and second else 3600.0

    def start(self) -> None:
        # Only what no cycle can change ends the daemon: the environment. A token
        # file or mapping file that is missing now may be mounted in a moment.
        problems = api_problems(self.settings, tokens=False)
        if problems:
            raise ConfigError(settings_message(problems))
        self.store = Store(self.settings.database_url)
        self._stack.callback(self.store.close)
        self.clients = self._stack.enter_context(open_clients(self.settings, stop=self.stop))
        self.clients.counter.observers.append(self.metrics.observe_request)
        self.clients.counter.retry_observers.append(self.metrics.observe_retry)
        listener = self.settings.http
        if listener.port:
            self.server = ServerThread([(self.app(), listener.port)], host=listener.host)
            try:
                self.server.start()
            except RuntimeError as exc:
                self._stack.close()
                raise ConfigError(
                    f"health listener on {listener.host}:{listener.port}: {exc}"
                ) from None
            self._stack.callback(self.server.stop)
        self._scheduler.add_job(
            self.cycle,
            self._trigger(),
            id=JOB_ID,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, int(self.interval)),
            next_run_time=datetime.now(UTC),
        )
        self._scheduler.start()
        log.info(
            "daemon.started",
            interval=self.settings.schedule.interval,
            cron=self.settings.schedule.cron,
            full_every=self.settings.schedule.full_every,
            health_port=self.server.port() if self.server else None,
        )

    # --- the job ----------------------------------------------------------------

    def cycle(self) -> None:
        if self.stop.is_set() or self.store is None or self.clients is None:
            return
        self._idle.clear()
        try:
            self._cycle(self.store, self.clients)
        finally:
            self._idle.set()

    def _cycle(self, store: Store, clients: Clients) -> None:
        full = self._full_pending
        self.health.last_run_at = time.time()
        try:
            report = run_sync(
                self.settings,
                store,
                clients,
                SyncOptions(force_full=full),
                should_stop=self.stop.is_set,
            )
        except LockBusyError as exc:
            # Another certsync applies against this store: not a failure of ours.
            log.warning("daemon.lock_busy", error=str(exc))
            self.health.last_outcome = "lock-busy"
            return
        except Exception as exc:
            log.error(
                "daemon.cycle_failed", error=str(exc), exc_info=not isinstance(exc, ConfigError)
            )
            self._failed(str(exc))
            self.metrics.runs.labels("error").inc()
            return
        self.health.runs += 1
        self.health.last_outcome = report.outcome
        if report.error is None:
            self._full_pending = False
        self.metrics.observe_run(report, owned=store.owned_count(), finished_at=time.time())
        if self.stop.is_set():
            return
        if report.outcome in ("error", "partial"):
            self._failed(report.error or _partial_reason(report))
            return
        if report.exit_code == EXIT_OK:
            self.health.last_success_at = time.time()
        self.health.last_error = None
        if self.health.consecutive_failures:
            log.info("daemon.recovered", after_failures=self.health.consecutive_failures)
            self.health.consecutive_failures = 0
            self.metrics.failures.set(0)
            self._reschedule(self.interval)

    def _failed(self, error: str) -> None:
        h = self.health
        h.consecutive_failures += 1
        h.last_error = error
        self.metrics.failures.set(h.consecutive_failures)
        wait = backoff_seconds(h.consecutive_failures, self.settings.schedule.max_backoff)
        log.warning(
            "daemon.retrying",
            failures=h.consecutive_failures,
            next_in=round(wait, 1),
            full=self._full_pending,
        )
        self._reschedule(wait)

    def _reschedule(self, seconds: float) -> None:
        if self.stop.is_set():
            return
        job = self._scheduler.get_job(JOB_ID)
        if job is not None:
            job.modify(next_run_time=datetime.now(UTC) + timedelta(seconds=seconds))

    # --- health and metrics -------------------------------------------------------

    def readiness(self) -> tuple[bool, str]:
        h = self.health
        if self.store is None:
            return False, "not started"
        try:
            self.store.ping()
        except Exception as exc:
            return False, f"store unreachable: {type(exc).__name__}"
        if h.consecutive_failures:
            # A failure stays visible until a cycle succeeds: never ready on an old success.
            return False, REDACTOR(
                f"the last {h.consecutive_failures} cycle(s) failed; the last error: {h.last_error}"
            )
        if h.last_success_at is None:
            return False, "no successful sync yet"
        age = time.time() - h.last_success_at
        if age > 2 * self.interval:
            return False, f"last successful sync {age:.0f}s ago (more than twice the interval)"
        return True, "ok"

    def app(self) -> Starlette:
        async def healthz(_: Request) -> Response:
            h = self.health
            return JSONResponse(
                {
                    "status": "alive",
                    "runs": h.runs,
                    "last_outcome": h.last_outcome,
                    "consecutive_failures": h.consecutive_failures,
                    "last_error": h.last_error,
                }
            )

        async def readyz(_: Request) -> Response:
            ready, reason = self.readiness()
            return JSONResponse(
                {"status": "ready" if ready else "not ready", "reason": reason},
                status_code=200 if ready else 503,
            )

        async def metrics(_: Request) -> Response:
            return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

        return Starlette(
            routes=[
                Route("/healthz", healthz),
                Route("/readyz", readyz),
                Route("/metrics", metrics),
            ]
        )

    # --- stopping -------------------------------------------------------------------

    def request_stop(self, signum: int | None = None, _frame: FrameType | None = None) -> None:
        if not self.stop.is_set():
            log.info("daemon.stopping", signal=signal.Signals(signum).name if signum else None)
        self.stop.set()

    def wait(self) -> int:
        """Block until asked to stop; let the running cycle finish its request; clean up."""
        while not self.stop.wait(1.0):
            pass
        self._scheduler.shutdown(wait=False)
        bound = self.settings.schedule.stop_timeout
        finished = self._idle.wait(bound)
        if not finished:
            log.error("daemon.stop_timeout", bound=bound)
        self._stack.close()
        log.info("daemon.stopped", clean=finished)
        return EXIT_OK if finished else EXIT_FAILED


def _partial_reason(report: SyncReport) -> str:
    failed = report.counts()["failed_requests"]
    missing = report.missing_templates
    parts = [f"{failed} write request(s) failed"] if failed else []
    if missing:
        parts.append(f"mapped template(s) missing in Monotree: {', '.join(map(str, missing))}")
    return "; ".join(parts) or "the cycle stopped before it finished"


def run_daemon(settings: Settings) -> int:
    daemon = Daemon(settings)
    signal.signal(signal.SIGTERM, daemon.request_stop)
    signal.signal(signal.SIGINT, daemon.request_stop)
    try:
        daemon.start()
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"certsync run could not start: {exc}") from None
    return daemon.wait()


__all__ = ["Daemon", "backoff_seconds", "run_daemon"]
