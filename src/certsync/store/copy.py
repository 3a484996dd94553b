"""Copying a whole store to another database: moving from SQLite to PostgreSQL
without losing what certsync owns (`certsync db copy`)."""

from __future__ import annotations

from sqlalchemy import Connection, Table, func, insert, select

from certsync.errors import StoreError
from certsync.store.db import translated
from certsync.store.tables import metadata

_BATCH = 1000
# The leases belong to the database they are in: the target starts with none.
_NOT_COPIED = {"writer_lock"}


def tables() -> list[Table]:
    """certsync's tables, parents before children (the journal's references hold)."""
    return [t for t in metadata.sorted_tables if t.name not in _NOT_COPIED]


def copy_rows(source: Connection, target: Connection) -> dict[str, int]:
    """Every row of every table, in the caller's transaction on `target`, which must hold
    no certsync data yet; rows per table."""
    with translated("could not be copied"):
        for table in tables():
            if target.execute(select(func.count()).select_from(table)).scalar_one():
                raise StoreError(
                    f"the target store already holds data (table {table.name}): copy only "
                    "into a new, empty database"
                )
        copied: dict[str, int] = {}
        for table in tables():
            n = 0
            batch: list[dict[str, object]] = []
            for row in source.execute(select(table)).mappings():
                batch.append(dict(row))
                if len(batch) == _BATCH:
                    target.execute(insert(table), batch)
                    n, batch = n + len(batch), []
            if batch:
                target.execute(insert(table), batch)
                n += len(batch)
            copied[table.name] = n
        return copied
