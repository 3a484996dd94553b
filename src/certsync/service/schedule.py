"""When the daemon's next cycle is due: the schedule, retries after a failure, and
runs asked for now. A function of a clock, so tests move time instead of sleeping.

APScheduler's triggers compute the schedule's fire times (interval or crontab,
with jitter); a missed fire time is not made up for, the next one after now is
taken (runs coalesce).
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from certsync.engine.scope import Scope
from certsync.errors import ConfigError
from certsync.settings import ScheduleSettings

RETRY_BASE = 1.0


class Clock(Protocol):
    """Wall time, and a wait that a stop or a new request ends early."""

    def now(self) -> float: ...

    def wait(self, event: threading.Event, seconds: float) -> bool: ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    def wait(self, event: threading.Event, seconds: float) -> bool:
        return event.wait(max(0.0, seconds))


@dataclass(frozen=True)
class RunRequest:
    """A cycle asked for now (by the admin API, a webhook, an operator), within a scope."""

    reason: str
    scope: Scope = field(default_factory=Scope)
    ticket: str | None = None  # the admin API's ticket that follows this run
    # A decision on a held-back plan instead of a cycle: (plan, verdict, who).
    decision: tuple[str, str, str] | None = None
    # A webhook delivery to handle instead of a cycle: its id.
    webhook: str | None = None


def backoff_seconds(failures: int, cap: float, base: float = RETRY_BASE) -> float:
    """The wait after `failures` failed cycles in a row: base, then doubling, never over cap."""
    return float(min(cap, base * (2 ** min(max(failures, 1) - 1, 30))))


def make_trigger(settings: ScheduleSettings) -> BaseTrigger:
    jitter = int(settings.jitter) or None
    if settings.cron:
        try:
            trigger = CronTrigger.from_crontab(settings.cron, timezone=UTC)
        except ValueError as exc:
            raise ConfigError(f"CERTSYNC_SCHEDULE__CRON: {exc}") from None
        trigger.jitter = jitter
        return trigger
    return IntervalTrigger(seconds=settings.interval, jitter=jitter, timezone=UTC)


class Schedule:
    """The time of the next scheduled cycle, and the runs asked for meanwhile."""

    def __init__(self, settings: ScheduleSettings, clock: Clock) -> None:
        self._settings = settings
        self._trigger = make_trigger(settings)
        self._clock = clock
        self._lock = threading.Lock()
        self._requests: deque[RunRequest] = deque()
        self.wake = threading.Event()
        self.next_at = clock.now()  # the first cycle runs at start
        self.gap = self._expected_gap()

    def _fire_after(self, moment: float) -> float:
        now = datetime.fromtimestamp(moment, UTC)
        if isinstance(self._trigger, IntervalTrigger):
            # The interval counts from the end of the last cycle: a slow cycle never
            # makes the next one start at once.
            jitter = float(self._settings.jitter)
            # Jitter spreads load between daemons; it guards no secret.
            spread = random.uniform(0, jitter) if jitter else 0.0  # noqa: S311
            return moment + self._settings.interval + spread
        fire = self._trigger.get_next_fire_time(None, now + timedelta(microseconds=1))
        return fire.timestamp() if fire is not None else moment + self.gap

    def _expected_gap(self) -> float:
        """Seconds between two scheduled runs: readiness allows twice that since a success."""
        if isinstance(self._trigger, IntervalTrigger):
            return float(self._settings.interval)
        now = datetime.fromtimestamp(self._clock.now(), UTC)
        first = self._trigger.get_next_fire_time(None, now)
        second = self._trigger.get_next_fire_time(first, (first or now) + timedelta(seconds=1))
        return max(1.0, (second - first).total_seconds()) if first and second else 3600.0

    def request(self, request: RunRequest) -> None:
        with self._lock:
            self._requests.append(request)
        self.wake.set()

    def take(self) -> RunRequest | None:
        """The next cycle to run now, if any: the scheduled one when it is due, else the
        oldest request. A stream of requests (webhooks) never starves the schedule."""
        if self._clock.now() >= self.next_at:
            return RunRequest("schedule")
        with self._lock:
            if self._requests:
                return self._requests.popleft()
        return None

    def take_webhooks(self, limit: int) -> list[str]:
        """Up to `limit` webhook deliveries still asked for, oldest first, taken out of
        the queue: the runner handles what arrived meanwhile together."""
        taken: list[str] = []
        with self._lock:
            kept: deque[RunRequest] = deque()
            for request in self._requests:
                if request.webhook is not None and len(taken) < limit:
                    taken.append(request.webhook)
                else:
                    kept.append(request)
            self._requests = kept
        return taken

    def seconds_to_next(self) -> float:
        with self._lock:
            if self._requests:
                return 0.0
        return max(0.0, self.next_at - self._clock.now())

    def ran(self, *, failures: int) -> None:
        """Place the next scheduled cycle after one that just ended."""
        now = self._clock.now()
        if failures:
            self.next_at = now + backoff_seconds(failures, self._settings.max_backoff)
        else:
            self.next_at = self._fire_after(now)
