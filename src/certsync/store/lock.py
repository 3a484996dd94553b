"""Leases in the store itself: the writer lock (row 1) and the daemons' leadership (row 2).

A lease row says who holds it (owner, pid, host), since when, its last heartbeat,
and an epoch that grows with every new holder. The owner is random per process,
so a restarted container (same hostname, PID 1 again) recognises the lease its
dead predecessor left and takes it once that missed a heartbeat, instead of
waiting the whole lease out; a twin container with the same hostname keeps
beating and keeps its lease. Expiry is measured by the database's clock (the
heartbeat is written with the database's CURRENT_TIMESTAMP and compared with
it), never by each host's.

Taking a lease is a compare-and-swap on the row as it was read (owner and
epoch, the row locked while it is decided), so two contenders cannot both win.
The holder renews every third of the lease and notices when a renewal changes
no row: the lease is `lost`.
It also keeps a deadline on its own monotonic clock: half a lease after the
start of its last renewal, short of the earliest moment another process could
take over. Past it (a process paused by SIGSTOP, a heartbeat that could not
reach the database) `valid()` is false and no write request may be sent.

While the writer lease is held, every store transaction of this process is
fenced: it first locks the lease row (see `_fence`) and fails unless this
owner and epoch still hold it.
A writer that lost its lease cannot write a row, whatever its clock says.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import Connection, Engine, func, insert, inspect, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError

from certsync.errors import LeaseLostError, LockBusyError, StopRequested, StoreError
from certsync.store.db import Db, table_of, translated
from certsync.store.tables import WriterLockRow

log = structlog.get_logger("certsync.store")

_LEASES = table_of(WriterLockRow)
WRITER, LEADER = 1, 2
_FREE = ""  # the owner of a released lease: the row stays, so its epoch keeps growing


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


def db_now(conn: Connection) -> datetime:
    value = conn.execute(select(func.current_timestamp())).scalar_one()
    if isinstance(value, str):  # SQLite answers text in UTC
        value = datetime.fromisoformat(value)
    return _aware(value)


@dataclass(frozen=True)
class Holder:
    """Who holds a lease, as `status` and the standbys' /readyz show it."""

    owner: str
    pid: int
    host: str
    epoch: int
    acquired_at: datetime
    age: float  # seconds since the last heartbeat, by the database's clock

    def describe(self) -> str:
        since = f"{self.acquired_at:%Y-%m-%d %H:%M:%S}"
        return f"certsync pid {self.pid} on {self.host} (since {since} UTC)"


class Lease:
    """One lease row of one store, held by at most one process at a time."""

    def __init__(
        self, db: Db, *, row: int = WRITER, lease_seconds: float = 30.0, fences: bool = True
    ) -> None:
        self._db = db
        self._engine: Engine = db.engine
        self._row = row
        self._fences = fences
        self.seconds = lease_seconds
        self._lease = timedelta(seconds=lease_seconds)
        self._beat = self._lease / 3
        self.owner = uuid.uuid4().hex
        self._host = socket.gethostname()
        self.lost = threading.Event()
        self.epoch: int | None = None
        self._valid_until = 0.0
        self._depth = 0
        self._guard = threading.Lock()
        self._has_epoch = False

    @property
    def beat_seconds(self) -> float:
        return self._beat.total_seconds()

    def _stale(self, row: Row[tuple[object, ...]], now: datetime) -> bool:
        if row.owner == _FREE:
            return True
        age = now - _aware(row.heartbeat_at)
        if row.host == self._host:
            if row.pid != os.getpid() and not _pid_alive(int(row.pid)):
                return True  # a process of this host that is gone holds nothing
            if row.pid == os.getpid() and age > self._beat + self._beat / 2:
                # This host and PID but another owner: a restarted container's predecessor
                # (PID 1 again), once it has missed a heartbeat. A twin container with the
                # same hostname is also PID 1, but it beats, and keeps its lease.
                return True
        return bool(age > self._lease)

    def _with_epoch(self, conn: Connection) -> bool:
        # A store older than revision 0010 has no epoch yet; its lease still works, so
        # that `db upgrade` can run under it, and the epoch starts at 0 once it exists.
        # Asked of the table itself, not of "the schema is current": a store at 0010 or
        # later but behind this certsync has epochs already.
        if not self._has_epoch:
            columns = {c["name"] for c in inspect(conn).get_columns("writer_lock")}
            self._has_epoch = "epoch" in columns
        return self._has_epoch

    def _read(self, conn: Connection, *, locking: bool = False) -> Row[tuple[object, ...]] | None:
        columns = [c for c in _LEASES.c if c.name != "epoch" or self._with_epoch(conn)]
        query = select(*columns).where(_LEASES.c.id == self._row)
        if locking:
            # PostgreSQL: a holder's heartbeat waits for this transaction, then finds the
            # row no longer its own. SQLite ignores it: a write after another writer's
            # commit fails on its own (the snapshot is stale).
            query = query.with_for_update()
        return conn.execute(query).first()

    def _deadline(self, since: float) -> float:
        # Earlier than any takeover: the shortest rule (this host and PID, another owner)
        # takes a lease half a lease after its last heartbeat, which came after `since`.
        return since + self.seconds / 2 - self.beat_seconds / 10

    def _confirmed(self, since: float, epoch: int) -> None:
        self.epoch = epoch
        self._valid_until = self._deadline(since)
        self.lost.clear()
        if self._fences:
            self._db.fence = self._fence

    def holder(self) -> Holder | None:
        """Who holds the lease now (None when nobody does)."""
        with translated("lease could not be read"), self._engine.connect() as conn:
            now = db_now(conn)
            row = self._read(conn)
            with_epoch = self._with_epoch(conn)
        if row is None or self._stale(row, now):
            return None
        age = (now - _aware(row.heartbeat_at)).total_seconds()
        epoch = int(row.epoch) if with_epoch else 0
        return Holder(row.owner, int(row.pid), row.host, epoch, _aware(row.acquired_at), age)

    def try_acquire(self) -> str | None:
        """Take the lease; return None on success or a description of the holder."""
        started = time.monotonic()
        with translated("lock could not be used"), self._engine.begin() as conn:
            now = db_now(conn)
            values = {
                "owner": self.owner,
                "pid": os.getpid(),
                "host": self._host,
                "acquired_at": now,
                "heartbeat_at": now,
            }
            table = _LEASES
            with_epoch = self._with_epoch(conn)
            row = self._read(conn, locking=True)
            if row is None:
                first = {"epoch": 1} if with_epoch else {}
                try:
                    with conn.begin_nested():
                        conn.execute(insert(table).values(id=self._row, **first, **values))
                except IntegrityError:
                    return "another certsync process (it took the lock just now)"
                self._confirmed(started, 1 if with_epoch else 0)
                return None
            if row.owner == self.owner and not self.lost.is_set():
                # Still ours (a release that could not reach the database, say): renewed,
                # and confirmed again with the epoch it already has.
                conn.execute(update(table).where(table.c.id == self._row).values(heartbeat_at=now))
                self._confirmed(started, int(row.epoch) if with_epoch else 0)
                return None
            if not self._stale(row, now):
                return (
                    f"certsync pid {row.pid} on {row.host} "
                    f"(since {_aware(row.acquired_at):%Y-%m-%d %H:%M:%S} UTC)"
                )
            epoch = int(row.epoch) + 1 if with_epoch else 0
            taken = conn.execute(
                update(table)
                .where(
                    table.c.id == self._row,
                    table.c.owner == row.owner,
                    *([table.c.epoch == row.epoch] if with_epoch else []),
                )
                .values(**({"epoch": epoch} if with_epoch else {}), **values)
            ).rowcount
            if taken != 1:
                return "another certsync process (it took over the stale lock just now)"
            if row.owner != _FREE:
                log.warning(
                    "store.lock_taken_over",
                    lease=self._row,
                    previous_pid=row.pid,
                    previous_host=row.host,
                    epoch=epoch,
                )
        self._confirmed(started, epoch)
        return None

    def heartbeat(self) -> bool:
        """Renew the lease; False (and `lost` set) when another process holds it now."""
        started = time.monotonic()
        mine = [_LEASES.c.id == self._row, _LEASES.c.owner == self.owner]
        with translated("lock could not be used"), self._engine.begin() as conn:
            if self._with_epoch(conn):
                mine.append(_LEASES.c.epoch == self.epoch)
            renewed = conn.execute(
                update(_LEASES).where(*mine).values(heartbeat_at=db_now(conn))
            ).rowcount
        if renewed != 1:
            self.lost.set()
            log.error("store.lock_lost", lease=self._row, owner=self.owner)
            return False
        self._valid_until = self._deadline(started)
        return True

    def valid(self) -> bool:
        """Still ours, by the last renewal and the local clock: may a write be sent now?"""
        return not self.lost.is_set() and time.monotonic() < self._valid_until

    def _fence(self, conn: Connection) -> None:
        """Inside a store transaction: fail it unless this owner and epoch hold the lease.

        PostgreSQL: the row is read FOR KEY SHARE, so a takeover (FOR UPDATE) waits for
        this transaction, while this process's own heartbeat (an update of a non-key
        column) does not. SQLite: a no-op UPDATE of the row, which takes the database's
        write lock there and then, so nothing can change the lease before this
        transaction commits (a plain SELECT would be a check before the act).
        """
        mine = (
            _LEASES.c.id == self._row,
            _LEASES.c.owner == self.owner,
            _LEASES.c.epoch == self.epoch,
        )
        if conn.dialect.name == "sqlite":
            held = conn.execute(update(_LEASES).where(*mine).values(epoch=_LEASES.c.epoch))
            found = held.rowcount == 1
        else:
            found = (
                conn.execute(
                    select(_LEASES.c.epoch).where(*mine).with_for_update(read=True, key_share=True)
                ).first()
                is not None
            )
        if not found:
            self.lost.set()
            raise LeaseLostError(
                "the store's writer lease was taken by another certsync: this write was "
                "refused (fenced); what was sent is in the journal"
            )

    def release(self) -> None:
        if self._db.fence == self._fence:
            self._db.fence = None
        self._valid_until = 0.0
        with translated("lock could not be used"), self._engine.begin() as conn:
            conn.execute(
                update(_LEASES)
                .where(_LEASES.c.id == self._row, _LEASES.c.owner == self.owner)
                .values(owner=_FREE)
            )

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
        `should_stop` says the process is stopping (StopRequested). Nested blocks of one
        process share the outer one's lease."""
        with self._guard:
            nested = self._depth > 0 and not self.lost.is_set()
            self._depth += 1
        if nested:
            try:
                yield
            finally:
                with self._guard:
                    self._depth -= 1
            return
        try:
            self._wait(timeout=timeout, poll=poll, what=what, should_stop=should_stop)
        except BaseException:
            with self._guard:
                self._depth -= 1
            raise
        stop = threading.Event()
        thread = threading.Thread(
            target=self._beat_until, args=(stop,), name="certsync-lease-heartbeat", daemon=True
        )
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=15)  # longer than a renewal can block (connect timeout 10 s)
            with self._guard:
                self._depth -= 1
            try:
                self.release()
            except StoreError as exc:
                # The lease is left behind; the next process takes it over once stale.
                log.warning("store.lock_release_failed", error=str(exc))

    def _wait(
        self, *, timeout: float, poll: float, what: str, should_stop: Callable[[], bool]
    ) -> None:
        deadline = time.monotonic() + timeout
        announced = False
        while True:
            holder = self.try_acquire()
            if holder is None:
                return
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

    def _beat_until(self, stop: threading.Event) -> None:
        every = max(0.2, self.beat_seconds)
        wait = every
        while not stop.wait(wait):
            try:
                if not self.heartbeat():
                    return
                wait = every
            except StoreError as exc:
                # Soon again: one failed renewal must not let the deadline pass unrenewed.
                log.warning("store.lock_heartbeat_failed", error=str(exc))
                wait = every / 4
