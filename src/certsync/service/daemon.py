"""`certsync run`: cycles on a schedule, on request, and again after a failure.

The daemon takes the cycle to run and a clock, so it can be driven step by step
(`run_pending`) with a fake clock and no sleeping. The first cycle is full, and
so is every retry of a failed full cycle; `run_sync` decides later ones from
`full_every`. A failed cycle (a wrong token, a missing mapping file, an API
down) does not end the daemon: it is not ready, says why on `/readyz`, and
retries after 1, 2, 4 ... seconds, capped by `CERTSYNC_SCHEDULE__MAX_BACKOFF`.
`request_run(reason, scope)` asks for a cycle now. SIGTERM and SIGINT set one
event that every wait, retry and apply loop checks. With several replicas, only
the one that leads (`service/leadership.py`) runs cycles; its first is full.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Protocol

import structlog

from certsync.engine.cycle import SyncOptions, SyncReport
from certsync.engine.report import Outcome
from certsync.engine.scope import Scope
from certsync.errors import ConfigError, LockBusyError
from certsync.redaction import Redactor
from certsync.service.leadership import Leadership
from certsync.service.metrics import Metrics
from certsync.service.runs import RunTicket, Tickets
from certsync.service.schedule import Clock, RunRequest, Schedule, SystemClock
from certsync.settings import Settings

log = structlog.get_logger("certsync.service.daemon")

Cycle = Callable[[SyncOptions], SyncReport]
# Webhook deliveries handled together at most: one scoped sync reads one page a user,
# and a stop, or a failed sync, waits for or touches no more than these.
WEBHOOK_GROUP = 50
# (held-back plan, "approve" or "reject", who): the approving run's report, or None.
DecideHeld = Callable[[str, str, str], SyncReport | None]


class StoreProbe(Protocol):
    """What the daemon asks of the store itself: is it there, and how much is owned."""

    def ping(self) -> None: ...

    def owned_count(self) -> int: ...

    def held_back_by_reason(self) -> Mapping[str, int]: ...


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
        decide_held: DecideHeld | None = None,
        handle_webhook: Callable[[Sequence[str]], SyncReport | None] | None = None,
        leadership: Leadership | None = None,
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
        self._decide_held = decide_held
        self._handle_webhook = handle_webhook
        self._store = store
        # Full until a full cycle succeeds: a failed one is retried as full.
        self._full_pending = True
        self._webhooks_queued: set[str] = set()
        self._queue_lock = threading.Lock()
        # None: the only replica, always leading (the daemon's own tests).
        self.leadership = leadership
        if leadership is not None:
            leadership.on_change = self._leadership_changed
        # Read at each scrape, not when leadership last changed: a leader whose renewals
        # hang (a database out of reach) shows 0 once its lease is no longer sure.
        self.metrics.leader.set_function(lambda: 1.0 if self._sure_leader() else 0.0)

    def _sure_leader(self) -> bool:
        return self.leadership is None or self.leadership.may_write()

    @property
    def leading(self) -> bool:
        return self.leadership is None or self.leadership.leading

    def _leadership_changed(self, leading: bool) -> None:
        if not leading:
            # What the leader reported is the new leader's to report now: a standby
            # that kept it would keep alerts firing after the new leader cleared them.
            self.metrics.lease_epoch.set(0)
            self.metrics.observe_held_back({})
            self.metrics.rate_limit_remaining.clear()
            self.metrics.failures.set(0)
            return
        assert self.leadership is not None
        self.metrics.lease_epoch.set(self.leadership.epoch or 0)
        # A new leader starts with a full cycle at once: it reconciles whatever the
        # previous one left in flight (the journal's open intents).
        self._full_pending = True
        self.schedule.next_at = self.clock.now()
        self.schedule.wake.set()

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

    def request_decision(self, plan_id: str, verdict: str, by: str) -> RunTicket:
        """Approve or reject a held-back plan, in turn with the cycles; its ticket."""
        ticket = self.tickets.open(f"{verdict} {plan_id}", None, self.clock.now())
        log.info("daemon.decision_requested", plan=plan_id, verdict=verdict, by=by)
        self.schedule.request(
            RunRequest(verdict, Scope(), ticket.id, decision=(plan_id, verdict, by))
        )
        return ticket

    def run_pending(self) -> SyncReport | None:
        """Run one cycle if one is due or asked for; its report, or None."""
        if self.stop.is_set() or not self.leading:
            return None  # a standby keeps its requests until it leads
        request = self.schedule.take()
        if request is None:
            return None
        if request.decision is not None:
            return self._decide(request)
        if request.webhook is not None:
            return self._webhook(request.webhook)
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

    def webhook_received(self, delivery_id: str) -> None:
        """A webhook delivery is recorded: sync its user next, in turn with the cycles.
        A standby leaves it to the leader, which finds it in the store."""
        if not self.leading:
            return
        with self._queue_lock:
            if delivery_id in self._webhooks_queued:
                return
            self._webhooks_queued.add(delivery_id)
        self.schedule.request(RunRequest("webhook", webhook=delivery_id))

    def _webhook(self, delivery_id: str) -> SyncReport | None:
        # Those that arrived while the runner was busy go with it: one sync for all.
        group = [delivery_id, *self.schedule.take_webhooks(WEBHOOK_GROUP - 1)]
        with self._queue_lock:
            self._webhooks_queued.difference_update(group)
        if self._handle_webhook is None:
            return None
        try:
            report = self._handle_webhook(group)
        except Exception as exc:  # they stay recorded: the next start retries them
            log.error("daemon.webhook_failed", deliveries=len(group), error=str(exc))
            return None
        if report is not None:
            self.metrics.observe_run(report, owned=None, finished_at=self.clock.now(), whole=False)
        return report

    def _decide(self, request: RunRequest) -> SyncReport | None:
        assert request.decision is not None
        plan_id, verdict, by = request.decision
        self.tickets.update(request.ticket, state="running", started_at=self.clock.now())
        report = None
        try:
            if self._decide_held is None:
                raise ConfigError("this daemon cannot decide on held-back plans")
            report = self._decide_held(plan_id, verdict, by)
        except Exception as exc:
            log.error("daemon.decision_failed", plan=plan_id, verdict=verdict, error=str(exc))
            self._closed(request, None, str(exc))
            return None
        if report is None:
            self.tickets.update(
                request.ticket, state="done", finished_at=self.clock.now(), outcome=verdict + "ed"
            )
        else:
            self._closed(request, report, report.error)
            self.metrics.observe_run(report, owned=None, finished_at=self.clock.now(), whole=False)
        self._count_held()
        return report

    def _count_held(self) -> None:
        try:
            self.metrics.observe_held_back(self._store.held_back_by_reason())
        except Exception as exc:  # a store gone now shows on /readyz
            log.warning("daemon.held_back_count_failed", error=str(exc))

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
        self._count_held()
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
        if self.leadership is not None and not self.leadership.leading:
            return self._standby_readiness(self.leadership)
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

    def _standby_readiness(self, leadership: Leadership) -> tuple[bool, str]:
        """A standby is ready while its view of the leader lease is fresh."""
        seen = leadership.seen_at
        if seen is None:
            return False, "standing by: the leader lease was not read yet"
        age = self.clock.now() - seen
        if age > leadership.lease.seconds:
            return False, f"standing by: the leader lease was last read {age:.0f}s ago"
        leader = leadership.leader or "nobody (taking over)"
        return True, f"standing by; the leader is {leader}"

    def loop(self) -> None:
        """Run cycles until asked to stop: each when due, or at once when requested."""
        while not self.stop.is_set():
            try:
                self.run_pending()
            except Exception as exc:  # never let the one cycle thread die quietly
                log.error("daemon.step_failed", error=str(exc), exc_info=True)
                self._failed(f"internal error: {type(exc).__name__}: {exc}")
            # A standby sleeps until it leads (the change wakes it) or is stopped.
            wait = self.schedule.seconds_to_next() if self.leading else 60.0
            self.clock.wait(self.schedule.wake, wait)
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
