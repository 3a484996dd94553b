"""What can go wrong in the sandbox: scripted and random faults, and Monotree's rate limit."""

from __future__ import annotations

import math
import random
import re
import time
from dataclasses import dataclass
from typing import Any, Literal


@dataclass
class Fault:
    """A scripted answer for the next `times` requests matching `match` (`METHOD path-regex`)."""

    match: str
    kind: Literal["status", "drop", "drop-after", "delay", "delay-after"]
    status: int = 503
    delay: float = 0.0
    times: int = 1
    retry_after: float | None = None


@dataclass
class FaultConfig:
    """Random faults, seeded so a run can be repeated."""

    latency: float = 0.0
    error_rate: float = 0.0
    error_statuses: tuple[int, ...] = (429, 500, 503)
    drop_rate: float = 0.0
    slow_rate: float = 0.0
    slow_seconds: float = 0.0
    retry_after: float = 1.0
    seed: int = 0
    apis: tuple[str, ...] = ("natecosmic", "monotree")


class RateLimiter:
    """Per-token fixed windows of 60 s, like Monotree's default throttle.

    Tests shorten `window` so pacing can be watched without waiting a minute.
    """

    def __init__(
        self, per_minute: int | None, clock: Any = time.time, window: float = 60.0
    ) -> None:
        self.per_minute = per_minute
        self.window = window
        self._clock = clock
        self._windows: dict[str, tuple[float, int]] = {}

    def hit(self, token: str) -> tuple[bool, dict[str, str], float]:
        """(allowed, headers, seconds until the window resets)."""
        if self.per_minute is None:
            return True, {}, 0.0
        now = self._clock()
        start, count = self._windows.get(token, (now, 0))
        if now >= start + self.window:
            start, count = now, 0
        reset = start + self.window
        allowed = count < self.per_minute
        if allowed:
            count += 1
        self._windows[token] = (start, count)
        headers = {
            "X-RateLimit-Limit": str(self.per_minute),
            "X-RateLimit-Remaining": str(max(0, self.per_minute - count)),
            # Rounded up: a client waiting until this second never lands in the old window.
            "X-RateLimit-Reset": str(math.ceil(reset)),
        }
        return allowed, headers, reset - now


def pick(
    config: FaultConfig,
    scripted: list[Fault],
    rng: random.Random,
    *,
    api: str,
    method: str,
    path: str,
) -> Fault | None:
    """The fault for one request: a scripted one first (used up as it fires), then a
    random one drawn from the seeded generator, or None."""
    for fault in scripted:
        pattern_method, _, pattern = fault.match.partition(" ")
        if pattern_method in (method, "*") and re.search(pattern, path):
            fault.times -= 1
            if fault.times <= 0:
                scripted.remove(fault)
            return fault
    if api not in config.apis:
        return None
    roll = rng.random()
    if roll < config.error_rate:
        status = rng.choice(config.error_statuses)
        return Fault("", "status", status=status, retry_after=config.retry_after)
    roll -= config.error_rate
    if roll < config.drop_rate:
        return Fault("", "drop")
    roll -= config.drop_rate
    if roll < config.slow_rate:
        return Fault("", "delay", delay=config.slow_seconds)
    return None
