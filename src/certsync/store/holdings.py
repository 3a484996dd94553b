"""What certsync owns (it issued) and what it knows Monotree holds, by template."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date

from sqlalchemy import ColumnElement, Connection, delete, func, insert, select, update

from certsync import cyclic_gc
from certsync.models import CountRow, Holding, Ownership, TemplateState
from certsync.pairs import Pairs
from certsync.store.db import Db, chunks, table_of
from certsync.store.lock import utcnow
from certsync.store.tables import HoldingRow, OwnershipRow, RunRow, TemplateStateRow

_O = table_of(OwnershipRow)
_H = table_of(HoldingRow)
_TS = table_of(TemplateStateRow)
_R = table_of(RunRow)
_ROWS_AT_ONCE = 5_000
_HELD = (_H.c.active, _H.c.issued_on, _H.c.expires_on, _H.c.expiry_known)


def mark_dirty(conn: Connection, certificate_ids: Iterable[int]) -> None:
    """Have the next cycle read these templates in full."""
    for cert in sorted(set(certificate_ids)):
        done = conn.execute(
            update(_TS).where(_TS.c.certificate_id == cert).values(dirty=True)
        ).rowcount
        if not done:
            conn.execute(insert(_TS).values(certificate_id=cert, read_at=None, dirty=True))


class HoldingStore:
    def __init__(self, db: Db) -> None:
        self._db = db

    def owned_pairs(self) -> Pairs:
        # Columns unpacked, not rows by name, and no collection while the sets grow:
        # a quarter of the CPU at 100,000 pairs.
        query = select(_O.c.certificate_id, _O.c.user_id)
        with self._db.read() as conn, cyclic_gc.paused():
            return Pairs.of(conn.execute(query))

    def owned_pairs_of(self, certificate_ids: Iterable[int], user_ids: Iterable[int]) -> Pairs:
        """What certsync issued to these users on these templates (a decision made again
        for some people): found by the primary key, not by reading all of it."""
        certs = sorted(set(certificate_ids))
        query = select(_O.c.certificate_id, _O.c.user_id).where(_O.c.certificate_id.in_(certs))
        found: list[tuple[int, int]] = []
        with self._db.read() as conn:
            for chunk in chunks(sorted(set(user_ids))):
                found += [(c, u) for c, u in conn.execute(query.where(_O.c.user_id.in_(chunk)))]
        return Pairs.of(found)

    def owned_certificates(self) -> set[int]:
        with self._db.read() as conn:
            return set(conn.execute(select(_O.c.certificate_id).distinct()).scalars())

    def ownership_of(self, user_id: int) -> dict[int, Ownership]:
        """What certsync issued to one user, by template, with the run that issued it."""
        query = (
            select(_O, _R.c.started_at)
            .join(_R, _R.c.id == _O.c.run_id, isouter=True)
            .where(_O.c.user_id == user_id)
        )
        with self._db.read() as conn:
            return {
                r.certificate_id: Ownership(
                    r.certificate_id, r.user_id, r.issued_on, r.run_id, r.started_at
                )
                for r in conn.execute(query)
            }

    def owned_count(self) -> int:
        with self._db.read() as conn:
            return int(conn.execute(select(func.count()).select_from(_O)).scalar_one())

    def template_states(self) -> dict[int, TemplateState]:
        with self._db.read() as conn:
            return {
                r.certificate_id: TemplateState(
                    r.certificate_id,
                    r.read_at,
                    bool(r.dirty),
                    None if r.count_matches is None else bool(r.count_matches),
                )
                for r in conn.execute(select(_TS))
            }

    def known(
        self, certificate_ids: Iterable[int], user_ids: Iterable[int] | None = None
    ) -> dict[int, dict[int, Holding]]:
        """What certsync knows these templates' holders hold (only these users', with
        `user_ids`: found by the primary key), every template named in the answer."""
        ids = sorted(set(certificate_ids))
        out: dict[int, dict[int, Holding]] = {c: {} for c in ids}
        query = select(_H.c.certificate_id, _H.c.user_id, *_HELD)
        selections: list[ColumnElement[bool]]
        if user_ids is None:
            selections = [_H.c.certificate_id.in_(chunk) for chunk in chunks(ids)]
        else:
            people = sorted(set(user_ids))
            selections = [
                _H.c.user_id.in_(chunk) & _H.c.certificate_id.in_(ids) for chunk in chunks(people)
            ]
        # Rows fetched many at a time (not all at once: 15 MB more at 100,000) and
        # unpacked, with no collection while the holdings are made: a third of the CPU
        # of reading them row by row, by name.
        days: dict[date | None, date | None] = {}  # each date once, not once a holding
        day = days.setdefault
        with self._db.read() as conn, cyclic_gc.paused():
            for selection in selections:
                found = conn.execute(query.where(selection))
                for rows in found.partitions(_ROWS_AT_ONCE):
                    for cert, user, active, issued, expires, known in rows:
                        out[cert][user] = Holding(
                            cert,
                            user,
                            bool(active),
                            day(issued, issued),
                            day(expires, expires),
                            bool(known),
                        )
        return out

    def count_basis(self, certificate_ids: Iterable[int]) -> dict[int, list[CountRow]]:
        """What certsync knows each template holds, grouped by what decides whether a
        holding still counts as active: (expiry known, expires on, issued on, how many)."""
        ids = sorted(set(certificate_ids))
        keys = (_H.c.certificate_id, _H.c.expiry_known, _H.c.expires_on, _H.c.issued_on)
        query = select(*keys, func.count()).where(_H.c.active.is_(True)).group_by(*keys)
        out: dict[int, list[CountRow]] = {c: [] for c in ids}
        with self._db.read() as conn:
            for chunk in chunks(ids):
                for cert, known, expires, issued, n in conn.execute(
                    query.where(_H.c.certificate_id.in_(chunk))
                ):
                    out[cert].append((bool(known), expires, issued, int(n)))
        return out

    def save_full_read(
        self,
        certificate_id: int,
        holdings: Mapping[int, Holding],
        *,
        listed_count: int | None = None,
    ) -> None:
        """Replace what certsync knows of a template with what Monotree just said, and
        whether the template list's count (`listed_count`) said the same."""
        rows = [
            (certificate_id, h.user_id, True, h.issued_on, h.expires_on, h.expiry_known)
            for h in holdings.values()
            if h.active
        ]
        with self._db.write() as conn:
            conn.execute(delete(_H).where(_H.c.certificate_id == certificate_id))
            if rows:
                _insert_known(conn, rows)
            conn.execute(delete(_TS).where(_TS.c.certificate_id == certificate_id))
            conn.execute(
                insert(_TS).values(
                    certificate_id=certificate_id,
                    read_at=utcnow(),
                    dirty=False,
                    count_matches=None if listed_count is None else listed_count == len(rows),
                )
            )


_KNOWN_COLUMNS = (
    "certificate_id",
    "user_id",
    "active",
    "issued_on",
    "expires_on",
    "expiry_known",
)


def _insert_known(
    conn: Connection, rows: list[tuple[int, int, bool, date | None, date | None, bool]]
) -> None:
    """Many known holdings at once. On SQLite, straight to the driver's executemany:
    SQLAlchemy's per-row parameter processing was two thirds of the CPU of saving a
    full read (1.4 of 2.1 s for 95,000 holdings). PostgreSQL keeps SQLAlchemy's
    multi-row INSERTs (a thousand rows a statement), which its driver's executemany
    would send one row a statement."""
    if conn.dialect.name != "sqlite":
        conn.execute(insert(_H), [dict(zip(_KNOWN_COLUMNS, r, strict=True)) for r in rows])
        return
    statement = insert(_H).compile(dialect=conn.dialect)
    order = [_KNOWN_COLUMNS.index(name) for name in statement.positiontup or ()]
    # Dates as SQLAlchemy's Date stores them in SQLite (ISO text), which reads them back.
    values: list[tuple[object, ...]] = [(c, u, a, _iso(i), _iso(e), k) for c, u, a, i, e, k in rows]
    if order != list(range(len(_KNOWN_COLUMNS))):
        values = [tuple(v[o] for o in order) for v in values]
    conn.exec_driver_sql(str(statement), values)


def _iso(day: date | None) -> str | None:
    return None if day is None else day.isoformat()
