"""The per-user audit trail: what certsync did for one person, and journal retention.

Every write request's items are written beside its journal entry, in the same
transaction (see `journal.py`); this module reads them and prunes old runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from certsync.store.db import Db, table_of
from certsync.store.tables import HeldPlanRow, JournalItemRow, JournalRow, OwnershipRow, RunRow
from certsync.writes import AssignRequest, WriteRequest

_I = table_of(JournalItemRow)
_J = table_of(JournalRow)
_R = table_of(RunRow)
_O = table_of(OwnershipRow)
_HP = table_of(HeldPlanRow)


@dataclass(frozen=True, slots=True)
class AuditItem:
    """One user's part of one write request."""

    run_id: str
    run_kind: str
    journal_id: str
    certificate_id: int
    user_id: int
    action: str  # assign, renew (the reset before a renewal's assign), revoke
    issued_on: date | None
    intent_at: datetime
    outcome: str | None
    outcome_at: datetime | None


@dataclass(frozen=True, slots=True)
class Pruned:
    runs: int
    journal_entries: int
    items: int


def item_rows(
    journal_id: str, run_id: str, request: WriteRequest, at: datetime
) -> list[dict[str, Any]]:
    common = {"journal_id": journal_id, "run_id": run_id, "intent_at": at}
    if isinstance(request, AssignRequest):
        return [
            {
                **common,
                "certificate_id": i.certificate_id,
                "user_id": i.user_id,
                "action": "assign",
                "issued_on": i.completed_at,
            }
            for i in request.items
        ]
    revoked = set(request.revoke_user_ids)
    return [
        {
            **common,
            "certificate_id": request.certificate_id,
            "user_id": user,
            "action": "revoke" if user in revoked else "renew",
            "issued_on": None,
        }
        for user in request.user_ids
    ]


def record_items(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(insert(_I), rows)


def close_items(conn: Connection, journal_ids: Iterable[str], outcome: str, at: datetime) -> None:
    ids = list(journal_ids)
    if ids:
        conn.execute(
            update(_I)
            .where(_I.c.journal_id.in_(ids), _I.c.outcome.is_(None))
            .values(outcome=outcome, outcome_at=at)
        )


class AuditTrail:
    def __init__(self, db: Db) -> None:
        self._db = db

    def for_user(self, user_id: int, *, since: datetime | None = None) -> list[AuditItem]:
        """Everything certsync sent for one Monotree user, oldest first."""
        query = (
            select(_I, _R.c.kind)
            .join(_R, _R.c.id == _I.c.run_id)
            .where(_I.c.user_id == user_id)
            .order_by(_I.c.intent_at, _I.c.journal_id, _I.c.certificate_id)
        )
        if since is not None:
            query = query.where(_I.c.intent_at >= since)
        with self._db.read() as conn:
            return [
                AuditItem(
                    r.run_id,
                    r.kind,
                    r.journal_id,
                    r.certificate_id,
                    r.user_id,
                    r.action,
                    r.issued_on,
                    r.intent_at,
                    r.outcome,
                    r.outcome_at,
                )
                for r in conn.execute(query)
            ]

    def prune(self, before: datetime) -> Pruned:
        """Drop the journal of finished runs that started before `before`.

        Ownership is never pruned, and the run row an ownership row names is kept
        (a few columns) so "issued by which run, when" still has an answer; its
        journal entries and items go like any other's.
        """
        old = select(_R.c.id).where(_R.c.started_at < before, _R.c.ended_at.is_not(None))
        with self._db.write() as conn:
            items = conn.execute(delete(_I).where(_I.c.run_id.in_(old))).rowcount
            entries = conn.execute(delete(_J).where(_J.c.run_id.in_(old))).rowcount
            runs = conn.execute(
                delete(_R).where(
                    _R.c.id.in_(old),
                    _R.c.id.not_in(select(_O.c.run_id)),
                    _R.c.id.not_in(select(_HP.c.run_id)),  # a held-back plan keeps its run
                )
            ).rowcount
        return Pruned(runs, entries, items)
