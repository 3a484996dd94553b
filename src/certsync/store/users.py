"""Monotree's user list, cached for email mappings and for names beside ids."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import delete, insert, select

from certsync.models import normal_email
from certsync.store.db import Db, chunks, table_of
from certsync.store.lock import utcnow
from certsync.store.tables import MonotreeUserRow
from certsync.store.values import get_value, set_value

_MU = table_of(MonotreeUserRow)
_CACHED_AT = "users_cached_at"


class UserCache:
    def __init__(self, db: Db) -> None:
        self._db = db

    def replace(self, users: Iterable[tuple[int, str | None, str | None]]) -> int:
        now = utcnow()
        rows = [
            {
                "id": uid,
                "email": normal_email(email),
                "name": name,
                "seen_at": now,
            }
            for uid, email, name in users
        ]
        with self._db.write() as conn:
            conn.execute(delete(_MU))
            if rows:
                conn.execute(insert(_MU), rows)
            set_value(conn, _CACHED_AT, now.isoformat())
        return len(rows)

    def remember(self, users: Sequence[tuple[int, str | None]]) -> None:
        """Users Monotree told of (webhooks), by id and email: added to, or refreshed in,
        the cache in one transaction."""
        latest = {uid: normal_email(email) for uid, email in users}
        if not latest:
            return
        now = utcnow()
        with self._db.write() as conn:
            for chunk in chunks(sorted(latest)):
                conn.execute(delete(_MU).where(_MU.c.id.in_(chunk)))
            conn.execute(
                insert(_MU),
                [
                    {"id": uid, "email": email, "name": None, "seen_at": now}
                    for uid, email in latest.items()
                ],
            )

    def by_email(self) -> dict[str, int]:
        with self._db.read() as conn:
            rows = conn.execute(select(_MU.c.id, _MU.c.email).where(_MU.c.email.is_not(None)))
            return {r.email: r.id for r in rows}

    def ids(self) -> set[int] | None:
        """Every user Monotree listed at the last refresh, or None if never read."""
        with self._db.read() as conn:
            if get_value(conn, _CACHED_AT) is None:
                return None
            return {r.id for r in conn.execute(select(_MU.c.id))}

    def labels(self, user_ids: Iterable[int]) -> dict[int, str]:
        """Email (or name) of each of these Monotree users, where the cache knows it."""
        ids = sorted(set(user_ids))
        out: dict[int, str] = {}
        with self._db.read() as conn:
            for chunk in chunks(ids):
                query = select(_MU.c.id, _MU.c.email, _MU.c.name).where(_MU.c.id.in_(chunk))
                for r in conn.execute(query):
                    if r.email or r.name:
                        out[r.id] = r.email or r.name
        return out
