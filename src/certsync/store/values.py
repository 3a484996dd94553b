"""Small named values: the mapping file's policy, the time of the last full cycle."""

from __future__ import annotations

from sqlalchemy import Connection, delete, insert, select

from certsync.store.db import Db, table_of
from certsync.store.tables import SettingRow

_S = table_of(SettingRow)


def get_value(conn: Connection, key: str) -> str | None:
    value = conn.execute(select(_S.c.value).where(_S.c.key == key)).scalar()
    return None if value is None else str(value)


def set_value(conn: Connection, key: str, value: str) -> None:
    conn.execute(delete(_S).where(_S.c.key == key))
    conn.execute(insert(_S).values(key=key, value=value))


class Values:
    def __init__(self, db: Db) -> None:
        self._db = db

    def get(self, key: str) -> str | None:
        with self._db.read() as conn:
            return get_value(conn, key)

    def set(self, key: str, value: str) -> None:
        with self._db.write() as conn:
            set_value(conn, key, value)
