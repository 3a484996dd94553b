"""Retries of one request: attempts, an overall deadline, waits from Retry-After or
exponential backoff with full jitter, and a sleep a stop event cuts short.

tenacity runs the loop; this module says when to give up, how long to wait, and
what to report. An attempt that is worth another raises `Retry`.
"""

from __future__ import annotations

import email.utils
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import structlog
import tenacity

from certsync.clients.counting import RequestCounter
from certsync.errors import OutcomeUnknownError, RetriableError, StopRequested
from certsync.settings import ClientSettings

log = structlog.get_logger("certsync.clients.retry")

T = TypeVar("T")


@dataclass(frozen=True)
class Timing:
    """How a session waits and tells time; tests pass a fake clock and sleep."""

    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], float] = time.time
    rand: Callable[[], float] = random.random
    stop: threading.Event | None = field(default=None, compare=False)

    def stopping(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def pause(self, seconds: float) -> None:
        """Wait, but no longer than until a stop is asked for."""
        if self.stop is not None:
            self.stop.wait(seconds)
        else:
            self.sleep(seconds)


class Retry(Exception):
    """An attempt failed in a way another attempt may not (429, 5xx, network)."""

    def __init__(
        self, reason: str, *, retry_after: float | None = None, maybe_applied: bool = False
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.maybe_applied = maybe_applied


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds to wait from a `Retry-After` header: delta-seconds or an HTTP date."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - now
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def backoff_delay(attempt: int, *, base: float, cap: float, rand: Callable[[], float]) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**attempt))."""
    return rand() * min(cap, base * (2.0 ** min(attempt, 30)))


def with_retries(
    attempt: Callable[[], T],
    *,
    api: str,
    what: str,
    write: bool,
    idempotent: bool = True,
    settings: ClientSettings,
    timing: Timing,
    counter: RequestCounter,
) -> T:
    """Call `attempt` until it returns, gives a non-retriable error, or the bounds run out.

    Gives up (RetriableError, or OutcomeUnknownError for a write that may have
    taken effect) after `max_attempts`, or when the next wait would pass
    `max_retry_seconds`, or once a stop is asked for; a write that is not
    idempotent, as soon as an attempt may have taken effect.
    """
    started = timing.clock()
    maybe_applied = False
    waits: dict[int, float] = {}

    def wait_after(state: tenacity.RetryCallState) -> float:
        # Asked by both `wait` and `stop` (in whichever order tenacity asks): the
        # jittered backoff is drawn once per attempt.
        if state.attempt_number not in waits:
            failed = _retry_of(state)
            waits[state.attempt_number] = (
                failed.retry_after
                if failed.retry_after is not None
                else backoff_delay(
                    state.attempt_number - 1,
                    base=settings.backoff_base,
                    cap=settings.backoff_max,
                    rand=timing.rand,
                )
            )
        return waits[state.attempt_number]

    def give_up(state: tenacity.RetryCallState) -> bool:
        nonlocal maybe_applied
        maybe_applied = maybe_applied or _retry_of(state).maybe_applied
        budget_left = settings.max_retry_seconds - (timing.clock() - started)
        return (
            timing.stopping()
            or (maybe_applied and not idempotent)
            or state.attempt_number >= settings.max_attempts
            or wait_after(state) > budget_left
        )

    def announce(state: tenacity.RetryCallState) -> None:
        counter.record_retry(api)
        log.info(
            "http.retry",
            api=api,
            request=what,
            attempt=state.attempt_number,
            wait=round(wait_after(state), 3),
            reason=_retry_of(state).reason,
        )

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(Retry),
        stop=give_up,
        wait=wait_after,
        sleep=timing.pause,
        before_sleep=announce,
        reraise=True,
    )
    try:
        return retrying(attempt)
    except StopRequested:
        if write and maybe_applied:
            # Stopped before the next attempt of a write an earlier attempt may have made.
            raise OutcomeUnknownError(
                api, f"{what} stopped before retrying; an earlier attempt may have taken effect"
            ) from None
        raise
    except Retry as last:
        attempts = retrying.statistics.get("attempt_number", 1)
        elapsed = timing.clock() - started
        stopping = " (stopping)" if timing.stopping() else ""
        message = (
            f"{what} gave up after {attempts} attempt(s) in {elapsed:.1f}s{stopping}: {last.reason}"
        )
        if write and maybe_applied:
            raise OutcomeUnknownError(api, message) from None
        raise RetriableError(api, message) from None


def _retry_of(state: tenacity.RetryCallState) -> Retry:
    assert state.outcome is not None  # tenacity asks only after an attempt ended
    failed = state.outcome.exception()
    assert isinstance(failed, Retry)  # only Retry is retried
    return failed
