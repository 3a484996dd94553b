"""One writer per store: a lease row in the store itself.

A row (owner, pid, host, heartbeat) says who applies. The owner is random per
process, so a restarted container (same hostname, PID 1 again) recognises the
lease its dead predecessor left and takes it once that missed a heartbeat (a
quarter of the lease and half again: 45 s by default) instead of waiting the
whole lease out; a twin container with the same hostname keeps beating and
keeps its lease. Expiry is measured by the database's clock (the heartbeat is
written with the database's CURRENT_TIMESTAMP and compared with it), never by
each host's.
Taking a lease over is a conditional UPDATE on the previous owner, so two
contenders cannot both win. The holder renews every quarter of the lease and
notices when a renewal changes no row: the lease is then `lost`, and the cycle
stops before its next write.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import Connection, Engine, delete, func, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError

from certsync.errors import LockBusyError, StopRequested, StoreError
from certsync.store.db import translated
from certsync.store.tables import WriterLockRow

log = structlog.get_logger("certsync.store")

_LOCK = WriterLockRow.__table__  # type: ignore[attr-defined]  # SQLModel adds it at class creation


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


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class WriterLock:
    """The writer lease of one store, held by one process at a time."""

    def __init__(self, engine: Engine, *, lease_seconds: float = 120.0) -> None:
        self._engine = engine
        self._lease = timedelta(seconds=lease_seconds)
        self._beat = self._lease / 4
        self.owner = uuid.uuid4().hex
        self._host = socket.gethostname()
        self.lost = threading.Event()

    def _db_now(self, conn: Connection) -> datetime:
        value = conn.execute(select(func.current_timestamp())).scalar_one()
        if isinstance(value, str):  # SQLite answers text in UTC
            value = datetime.fromisoformat(value)
        return _aware(value)

    def _stale(self, row: Row[tuple[object, ...]], db_now: datetime) -> bool:
        age = db_now - _aware(row.heartbeat_at)
        if row.host == self._host:
            if row.pid != os.getpid() and not _pid_alive(int(row.pid)):
                return True  # a process of this host that is gone holds nothing
            if row.pid == os.getpid() and age > self._beat + self._beat / 2:
                # This host and PID but another owner: a restarted container's predecessor
                # (PID 1 again), once it has missed a heartbeat. A twin container with the
                # same hostname is also PID 1, but it beats, and keeps its lease.
                return True
        return bool(age > self._lease)

    def try_acquire(self) -> str | None:
        """Take the lease; return None on success or a description of the holder."""
        with translated("lock could not be used"), self._engine.begin() as conn:
            db_now = self._db_now(conn)
            values = {
                "owner": self.owner,
                "pid": os.getpid(),
                "host": self._host,
                "acquired_at": db_now,
                "heartbeat_at": db_now,
            }
            row = conn.execute(select(_LOCK).where(_LOCK.c.id == 1)).first()
            if row is None:
                try:
                    with conn.begin_nested():
                        conn.execute(insert(_LOCK).values(id=1, **values))
                except IntegrityError:
                    return "another certsync process (it took the lock just now)"
                self.lost.clear()
                return None
            if row.owner == self.owner:
                return None
            if not self._stale(row, db_now):
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
            self.lost.clear()
            return None

    def heartbeat(self) -> bool:
        """Renew the lease; False (and `lost` set) when another process holds it now."""
        with translated("lock could not be used"), self._engine.begin() as conn:
            renewed = conn.execute(
                update(_LOCK)
                .where(_LOCK.c.id == 1, _LOCK.c.owner == self.owner)
                .values(heartbeat_at=self._db_now(conn))
            ).rowcount
        if renewed != 1:
            self.lost.set()
            log.error("store.lock_lost", owner=self.owner)
        return renewed == 1

    def release(self) -> None:
        with translated("lock could not be used"), self._engine.begin() as conn:
            conn.execute(delete(_LOCK).where(_LOCK.c.id == 1, _LOCK.c.owner == self.owner))

    @contextmanager
    def held(
        self,
        *,
        timeout: float,
        poll: float = 0.25,
        what: str = "the store",
        should_stop: Callable[[], bool] = lambda: False,
    ) -> Iterator[None]:
        """Hold the lease for the block; wait up to `timeout` seconds for it, or until
        `should_stop` says the process is stopping (StopRequested)."""
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
            if should_stop():
                raise StopRequested(f"stopped while waiting for {what}'s lock ({holder})")
            if not announced:
                log.info("store.lock_wait", holder=holder, timeout=timeout)
                announced = True
            time.sleep(poll)
        stop = threading.Event()
        beat_every = max(1.0, self._beat.total_seconds())

        def beat() -> None:
            while not stop.wait(beat_every):
                try:
                    if not self.heartbeat():
                        return
                except StoreError as exc:
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
            except StoreError as exc:
                # The lease is left behind; the next process takes it over once stale.
                log.warning("store.lock_release_failed", error=str(exc))
