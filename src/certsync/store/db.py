"""The one place where a database error becomes certsync's own `StoreError`.

Nothing outside `store/` sees SQLAlchemy: callers catch `StoreError` (exit 2),
whose message names what failed but never the URL, which may hold a password.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy import Connection, Engine, Table, delete
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlmodel import SQLModel

from certsync.batches import batches
from certsync.errors import StoreError

T = TypeVar("T")


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Run the block; a database error leaves it as `StoreError("the store <what>: ...")`."""
    try:
        yield
    except SQLAlchemyError as exc:
        detail = getattr(exc, "orig", None) or exc
        first = str(detail).strip().splitlines()[0] if str(detail).strip() else type(exc).__name__
        raise StoreError(f"the store {what}: {first}") from None


class Db:
    """The connection source every repository shares: reads and transactions, each with
    its errors translated, and refused while the schema is older than this certsync's."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.current = False
        # Set while this process holds the writer lease: every write transaction
        # first proves the lease is still its own (see store/lock.py).
        self.fence: Callable[[Connection], None] | None = None

    def require_current(self) -> None:
        if not self.current:
            raise StoreError(
                "the store is at an older schema than this certsync's: run `certsync db "
                "upgrade` (a sync or the daemon also upgrades it, under the writer lock)"
            )

    @contextmanager
    def read(self) -> Iterator[Connection]:
        self.require_current()
        with translated("could not be read"), self.engine.connect() as conn:
            yield conn

    @contextmanager
    def write(self, *, fenced: bool = True) -> Iterator[Connection]:
        """A transaction; fenced by the writer lease while this process holds it."""
        self.require_current()
        with translated("could not be written"), self.engine.begin() as conn:
            fence = self.fence
            if fenced and fence is not None:
                fence(conn)
            yield conn

    @contextmanager
    def write_promptly(self, wait: float = 10.0) -> Iterator[Connection]:
        """An unfenced transaction that starts as soon as SQLite's write lock is free.

        SQLite's own busy handler sleeps 1, 2, 5, 10, 15, 20, 25 ms between tries: a
        writer behind a lock held 11 ms waits 18 ms, behind one held 20 ms, 33 ms. The
        webhook receiver answers only once its delivery is committed, so here the lock
        is asked for every millisecond, for up to `wait` seconds. Other databases have
        no such lock: a plain transaction.
        """
        if self.engine.dialect.name != "sqlite":
            with self.write(fenced=False) as conn:
                yield conn
            return
        self.require_current()
        with translated("could not be written"), self.engine.connect() as conn:
            give_up = time.monotonic() + wait
            conn.exec_driver_sql("PRAGMA busy_timeout = 0")
            try:
                while True:
                    try:
                        conn.exec_driver_sql("BEGIN IMMEDIATE")
                        break
                    except OperationalError as exc:
                        conn.rollback()
                        if "locked" not in str(exc.orig) or time.monotonic() > give_up:
                            raise
                        time.sleep(0.001)
                yield conn
                conn.commit()
            finally:
                try:
                    conn.rollback()
                    conn.exec_driver_sql(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
                    conn.commit()
                except SQLAlchemyError:
                    # Not back in the pool with a busy timeout of 0: closed instead.
                    conn.invalidate()
                    raise


BUSY_TIMEOUT_MS = 10_000
CHUNK = 500  # keys per IN (...) clause, well under SQLite's variable limit


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    return batches(items, size)


def delete_pairs(conn: Connection, table: Table, pairs: Iterable[tuple[int, int]]) -> None:
    """Delete (certificate, user) rows: one statement per certificate, `user_id IN (...)`,
    which walks the primary key where a row-value IN over pairs made SQLite scan it all."""
    by_cert: dict[int, list[int]] = {}
    for cert, user in pairs:
        by_cert.setdefault(cert, []).append(user)
    for cert, users in by_cert.items():
        for chunk in chunks(users):
            conn.execute(
                delete(table).where(table.c.certificate_id == cert, table.c.user_id.in_(chunk))
            )


def table_of(model: type[SQLModel]) -> Table:
    """The Core table of a SQLModel class (SQLModel sets it when the class is made)."""
    table = model.__table__  # type: ignore[attr-defined]  # set by SQLModel's metaclass
    assert isinstance(table, Table)
    return table
