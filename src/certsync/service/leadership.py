"""Which replica leads: the leader lease taken, renewed and watched.

Every `certsync run` on one store contends for the leader lease (row 2 of the
store's leases, docs/high-availability.md). The leader renews it every third
of its length and runs the cycles; a standby looks at it every
`CERTSYNC_LEASE__STANDBY_POLL` seconds and takes it once it ran out or was
released. A leader that cannot renew in time (paused, or the database out of
reach) stops leading before another replica may take over. Driven by `step()`
and a clock, so its tests move time instead of sleeping.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

import structlog

from certsync.errors import StoreError
from certsync.service.schedule import Clock

log = structlog.get_logger("certsync.service.leadership")


class LeaderLease(Protocol):
    """What leadership needs of a lease (store/lock.py's `Lease`)."""

    @property
    def seconds(self) -> float: ...

    @property
    def beat_seconds(self) -> float: ...

    @property
    def epoch(self) -> int | None: ...

    def try_acquire(self) -> str | None: ...

    def heartbeat(self) -> bool: ...

    def valid(self) -> bool: ...

    def release(self) -> None: ...


class Leadership:
    """This replica's view of the leader lease; `leading` is true while it holds it."""

    def __init__(
        self,
        lease: LeaderLease,
        *,
        poll: float,
        clock: Clock,
        on_change: Callable[[bool], None] = lambda _leading: None,
        while_leading: Callable[[], None] = lambda: None,
    ) -> None:
        self.lease = lease
        self.poll = poll
        self.leading = False
        self.leader: str | None = None  # who leads, as a standby last saw it
        self.seen_at: float | None = None  # the last time the lease was read or renewed
        self._clock = clock
        # Set by whoever acts on leadership (the daemon): told of each change, and
        # called on every step while leading.
        self.on_change = on_change
        self.while_leading = while_leading
        self._renew_at = 0.0

    @property
    def epoch(self) -> int | None:
        return self.lease.epoch if self.leading else None

    def may_write(self) -> bool:
        """Leading, and sure of it by the last renewal: a write request may be sent."""
        return self.leading and self.lease.valid()

    def step(self) -> None:
        now = self._clock.now()
        try:
            if self.leading:
                if now >= self._renew_at:
                    if not self.lease.heartbeat():
                        self._set(False, "another replica took the lease")
                        return
                    self._renew_at = now + self.lease.beat_seconds
                self.seen_at = now
                if not self.lease.valid():
                    self._set(False, "the lease was not renewed in time")
                    return
                self.while_leading()
                return
            holder = self.lease.try_acquire()
            self.seen_at = now
            if holder is not None and holder != self.leader:
                log.info("leader.standing_by", leader=holder)  # once per leader seen
            self.leader = holder
            if holder is None:
                self._renew_at = now + self.lease.beat_seconds
                self._set(True, "the lease was free or ran out")
        except StoreError as exc:
            log.warning("leader.lease_unreachable", error=str(exc), leading=self.leading)
            if self.leading and not self.lease.valid():
                self._set(False, "the lease could not be renewed in time")

    def _set(self, leading: bool, why: str) -> None:
        self.leading = leading
        if leading:
            log.info("leader.elected", epoch=self.lease.epoch, why=why)
        else:
            log.warning("leader.lost", why=why)
        self.on_change(leading)

    def run(self, stop: threading.Event) -> None:
        """Step until `stop`; a standby every `poll` seconds, the leader as often, renewing
        when a third of the lease has passed."""
        while not stop.is_set():
            self.step()
            self._clock.wait(stop, self.poll)

    def resign(self) -> None:
        """Release the lease on a graceful stop, so a standby takes over at once."""
        if not self.leading:
            return
        self.leading = False
        try:
            self.lease.release()
        except StoreError as exc:  # it runs out on its own
            log.warning("leader.release_failed", error=str(exc))
        log.info("leader.resigned")
