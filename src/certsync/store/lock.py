"""One writer per store: a lease row in the store itself.

A row (owner, pid, host, heartbeat) says who applies. Taking it over is a
conditional UPDATE on the previous owner, so two contenders cannot both win.
A lease is stale when its process is gone (same host) or its heartbeat is older
than the lease; a live holder refreshes the heartbeat from a background thread.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from certsync.errors import LockBusyError
from certsync.store.db import translated
from certsync.store.tables import WriterLockRow

log = structlog.get_logger("certsync.store")

_LOCK = WriterLockRow.__table__  # type: ignore[attr-defined]


def utcnow() -> datetime:
    """Aware UTC: SQLModel's datetime columns insist on a timezone."""
    return datetime.now(UTC)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class WriterLock:
    """The writer lease of one store."""

    def __init__(self, engine: Engine, *, lease_seconds: float = 120.0) -> None:
        self._engine = engine
        self._lease = timedelta(seconds=lease_seconds)
        self.owner = uuid.uuid4().hex
        self._host = socket.gethostname()

    def _stale(self, row: WriterLockRow | object, now: datetime) -> bool:
        host = getattr(row, "host", None)
        pid = getattr(row, "pid", 0)
        heartbeat = getattr(row, "heartbeat_at", now)
        if host == self._host and not _pid_alive(int(pid)):
            return True
        return bool(now - heartbeat > self._lease)

    def try_acquire(self) -> str | None:
        """Take the lease; return None on success or a description of the holder."""
        now = utcnow()
        values = {
            "owner": self.owner,
            "pid": os.getpid(),
            "host": self._host,
            "acquired_at": now,
            "heartbeat_at": now,
        }
        with translated("lock could not be used"), self._engine.begin() as conn:
            row = conn.execute(select(_LOCK).where(_LOCK.c.id == 1)).first()
            if row is None:
                try:
                    with conn.begin_nested():
                        conn.execute(insert(_LOCK).values(id=1, **values))
                except IntegrityError:
                    return "another certsync process (it took the lock just now)"
                return None
            if row.owner == self.owner:
                return None
            if not self._stale(row, now):
                return (
                    f"certsync pid {row.pid} on {row.host} "
                    f"(since {row.acquired_at:%Y-%m-%d %H:%M:%S} UTC)"
                )
            taken = conn.execute(
                update(_LOCK).where(_LOCK.c.id == 1, _LOCK.c.owner == row.owner).values(**values)
            ).rowcount
            if taken != 1:
                return "another certsync process (it took over the stale lock just now)"
            log.warning("store.lock_taken_over", previous_pid=row.pid, previous_host=row.host)
            return None

    def heartbeat(self) -> None:
        with translated("lock could not be used"), self._engine.begin() as conn:
            conn.execute(
                update(_LOCK)
                .where(_LOCK.c.id == 1, _LOCK.c.owner == self.owner)
                .values(heartbeat_at=utcnow())
            )

    def release(self) -> None:
        with translated("lock could not be used"), self._engine.begin() as conn:
            conn.execute(delete(_LOCK).where(_LOCK.c.id == 1, _LOCK.c.owner == self.owner))

    @contextmanager
    def held(
        self, *, timeout: float, poll: float = 0.25, what: str = "the store"
    ) -> Iterator[None]:
        """Hold the lease for the block; wait up to `timeout` seconds for it."""
        deadline = time.monotonic() + timeout
        announced = False
        while True:
            holder = self.try_acquire()
            if holder is None:
                break
            if time.monotonic() >= deadline:
                raise LockBusyError(
                    f"{what} is locked by {holder}; waited {timeout:.0f}s "
                    "(CERTSYNC_SYNC__LOCK_TIMEOUT). Only one certsync may apply at a time."
                )
            if not announced:
                log.info("store.lock_wait", holder=holder, timeout=timeout)
                announced = True
            time.sleep(poll)
        stop = threading.Event()
        beat_every = max(1.0, self._lease.total_seconds() / 4)

        def beat() -> None:
            while not stop.wait(beat_every):
                try:
                    self.heartbeat()
                except Exception as exc:
                    log.warning("store.lock_heartbeat_failed", error=str(exc))

        thread = threading.Thread(target=beat, name="certsync-lock-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=5)
            try:
                self.release()
            except OperationalError as exc:
                # The lease is left behind; the next process takes it over once stale.
                log.warning("store.lock_release_failed", error=str(exc.orig))
