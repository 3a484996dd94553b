"""Keeping under the server's rate limit, from its own X-RateLimit headers."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping

import structlog

from certsync.errors import StopRequested

log = structlog.get_logger("certsync.clients.pacing")

Sleep = Callable[[float], None]
Clock = Callable[[], float]


def _header_float(headers: Mapping[str, str], name: str) -> float | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


class RateBudget:
    """What the server's rate limit allows now: numbers in, numbers out, no clock, no thread.

    It trusts `X-RateLimit-Remaining` and `X-RateLimit-Reset` (a Unix time; a
    small number is read as seconds from now) and counts the requests it lets
    through itself, so several threads cannot all spend the last request of a
    window at once. While the window is unknown (first request, or the last
    window has ended), one request goes alone: its answer tells what the
    others may do.
    """

    _EPOCH_THRESHOLD = 1_000_000_000.0
    _MARGIN = 0.05

    def __init__(self, *, max_per_minute: int | None = None) -> None:
        self._cap = max_per_minute
        self._sent: deque[float] = deque()
        self._remaining: float | None = None
        self._reset_at: float | None = None
        self.in_flight = 0
        # A server that never sends rate-limit headers gives nothing to probe for.
        self._headerless = False

    def delay(self, now: float) -> float:
        """Seconds before the next request may go; 0 when it may go now."""
        delay = 0.0
        if self._reset_at is not None and now >= self._reset_at:
            self._remaining, self._reset_at = None, None
        if self._remaining is not None and self._remaining <= 0:
            reset_at = self._reset_at if self._reset_at is not None else now + 60.0
            self._reset_at = reset_at
            delay = reset_at - now + self._MARGIN
        if self._cap is not None:
            while self._sent and self._sent[0] <= now - 60.0:
                self._sent.popleft()
            if len(self._sent) >= self._cap:
                delay = max(delay, self._sent[0] + 60.0 - now + self._MARGIN)
        return delay

    @property
    def waiting_for_probe(self) -> bool:
        """A request is out to learn the window: the next one waits for its answer."""
        return self._remaining is None and not self._headerless and self.in_flight > 0

    def take(self, now: float) -> None:
        """Count one request as sent (the caller saw `delay(now) == 0`)."""
        if self._remaining is not None:
            self._remaining -= 1
        if self._cap is not None:
            self._sent.append(now)
        self.in_flight += 1

    def answered(self, headers: Mapping[str, str] | None, now: float) -> None:
        """Learn from a response's rate-limit headers (None: the request got no answer)."""
        self.in_flight = max(0, self.in_flight - 1)
        if headers is None:
            return
        remaining = _header_float(headers, "x-ratelimit-remaining")
        reset = _header_float(headers, "x-ratelimit-reset")
        if remaining is None:
            self._headerless = True
            return
        self._headerless = False
        if reset is not None and reset < self._EPOCH_THRESHOLD:
            reset = now + reset
        new_window = reset is not None and (self._reset_at is None or reset > self._reset_at + 0.5)
        if new_window:
            # Requests still in flight were let through before this answer was
            # counted by the server; assume they land in this same window.
            self._reset_at = reset
            self._remaining = remaining - self.in_flight
        elif self._remaining is None:
            self._remaining = remaining - self.in_flight
        else:
            self._remaining = min(self._remaining, remaining)


class Pacer:
    """A `RateBudget` shared by a client's threads: it holds the lock and does the waiting."""

    def __init__(
        self,
        *,
        max_per_minute: int | None = None,
        clock: Clock = time.time,
        sleep: Sleep = time.sleep,
        stop: threading.Event | None = None,
    ) -> None:
        self._budget = RateBudget(max_per_minute=max_per_minute)
        self._stop = stop
        self._lock = threading.Lock()
        self._probe_done = threading.Condition(self._lock)
        self._clock = clock
        self._sleep = sleep

    def acquire(self) -> None:
        """Block until one more request may be sent, and count it as sent."""
        while True:
            if self._stop is not None and self._stop.is_set():
                raise StopRequested("stopping: no new request is sent")
            with self._lock:
                now = self._clock()
                delay = self._budget.delay(now)
                if delay <= 0 and self._budget.waiting_for_probe:
                    self._probe_done.wait(timeout=0.05)
                    continue
                if delay <= 0:
                    self._budget.take(now)
                    return
            log.debug("http.paced", wait=round(delay, 3))
            if self._stop is not None:
                self._stop.wait(delay)
            else:
                self._sleep(delay)

    def release(self, headers: Mapping[str, str] | None) -> None:
        """Learn from a response's rate-limit headers (or from a request that got none)."""
        with self._lock:
            self._budget.answered(headers, self._clock())
            self._probe_done.notify_all()
