"""Runs and the journal: every write's intent before it is sent, its outcome after,
and the ownership and known holdings each one changes, in the same transaction."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Insert, and_, delete, insert, select, update

from certsync.store.audit import close_items, item_rows, record_items
from certsync.store.db import Db, delete_pairs, table_of
from certsync.store.holdings import mark_dirty
from certsync.store.lock import utcnow
from certsync.store.tables import HoldingRow, JournalRow, OwnershipRow, RunRow
from certsync.store.values import get_value, set_value
from certsync.writes import AssignRequest, WriteRequest

_O = table_of(OwnershipRow)
_H = table_of(HoldingRow)
_R = table_of(RunRow)
_J = table_of(JournalRow)


def _intent(
    journal_id: str,
    *,
    run_id: str,
    seq: int,
    action: str,
    certificate_ids: list[int],
    payload: str,
    at: datetime,
) -> Insert:
    """A journal entry as it is written before its request leaves: no outcome yet."""
    return insert(_J).values(
        id=journal_id,
        run_id=run_id,
        seq=seq,
        action=action,
        certificate_ids=json.dumps(certificate_ids),
        payload=payload,
        intent_at=at,
    )


@dataclass(frozen=True, slots=True)
class RunSummary:
    id: str
    kind: str
    started_at: datetime
    ended_at: datetime | None
    outcome: str | None
    counts: dict[str, Any]
    requests: dict[str, int]
    error: str | None


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One write request: what was meant before it was sent, and how it ended."""

    id: str
    run_id: str
    seq: int
    action: str
    certificate_ids: tuple[int, ...]
    payload: dict[str, Any]
    intent_at: datetime
    outcome: str | None
    outcome_at: datetime | None
    error: str | None


_SEQUENCE = "run_sequence"


class Journal:
    def __init__(self, db: Db) -> None:
        self._db = db

    def start_run(self, kind: str) -> str:
        run_id = uuid.uuid4().hex[:16]
        with self._db.write() as conn:
            conn.execute(insert(_R).values(id=run_id, kind=kind, started_at=utcnow()))
            # Which run came right before which, whatever the replicas' clocks say.
            set_value(conn, _SEQUENCE, str(int(get_value(conn, _SEQUENCE) or 0) + 1))
        return run_id

    def sequence(self) -> int:
        """How many runs this store has started (the last one's number)."""
        with self._db.read() as conn:
            return int(get_value(conn, _SEQUENCE) or 0)

    def outcome(self, run_id: str) -> str | None:
        with self._db.read() as conn:
            found = conn.execute(select(_R.c.outcome).where(_R.c.id == run_id)).scalar()
        return None if found is None else str(found)

    def finish_run(
        self,
        run_id: str,
        *,
        outcome: str,
        counts: Mapping[str, Any],
        requests: Mapping[str, int],
        error: str | None = None,
    ) -> None:
        with self._db.write() as conn:
            conn.execute(
                update(_R)
                .where(_R.c.id == run_id)
                .values(
                    ended_at=utcnow(),
                    outcome=outcome,
                    counts=json.dumps(dict(counts), sort_keys=True, default=str),
                    requests=json.dumps(dict(requests), sort_keys=True),
                    error=error,
                )
            )

    def record_intent(self, run_id: str, seq: int, request: WriteRequest) -> str:
        """Journal a write before it is sent; an assign also records the ownership it creates.

        Both are committed before the request leaves, so a crash between the call
        and its outcome never loses what certsync issued.
        """
        journal_id = f"{run_id}-{seq:05d}"
        at = utcnow()
        with self._db.write() as conn:
            conn.execute(
                _intent(
                    journal_id,
                    run_id=run_id,
                    seq=seq,
                    action=request.action,
                    certificate_ids=list(request.certificate_ids()),
                    payload=json.dumps(request.payload()),
                    at=at,
                )
            )
            record_items(conn, item_rows(journal_id, run_id, request, at))
            if isinstance(request, AssignRequest):
                pairs = [(i.certificate_id, i.user_id) for i in request.items]
                delete_pairs(conn, _O, pairs)
                conn.execute(
                    insert(_O),
                    [
                        {
                            "certificate_id": i.certificate_id,
                            "user_id": i.user_id,
                            "issued_on": i.completed_at,
                            "run_id": run_id,
                            "journal_id": journal_id,
                        }
                        for i in request.items
                    ],
                )
        return journal_id

    def record_outcome(
        self, journal_id: str, request: WriteRequest, outcome: str, error: str | None = None
    ) -> None:
        """Journal how a write ended and update what certsync knows of Monotree to match."""
        at = utcnow()
        with self._db.write() as conn:
            conn.execute(
                update(_J)
                .where(_J.c.id == journal_id)
                .values(outcome=outcome, outcome_at=at, error=error)
            )
            close_items(conn, [journal_id], outcome, at)
            if outcome != "ok":
                mark_dirty(conn, request.certificate_ids())
                if outcome == "failed" and isinstance(request, AssignRequest):
                    # Refused outright: nothing was issued, so nothing is owned.
                    conn.execute(delete(_O).where(_O.c.journal_id == journal_id))
                return
            if isinstance(request, AssignRequest):
                delete_pairs(conn, _H, [(i.certificate_id, i.user_id) for i in request.items])
                conn.execute(
                    insert(_H),
                    [
                        {
                            "certificate_id": i.certificate_id,
                            "user_id": i.user_id,
                            "active": True,
                            "issued_on": i.completed_at,
                            "expires_on": None,
                            "expiry_known": False,
                        }
                        for i in request.items
                    ],
                )
            else:
                cert = request.certificate_id
                delete_pairs(conn, _H, [(cert, u) for u in request.user_ids])
                delete_pairs(conn, _O, [(cert, u) for u in request.revoke_user_ids])

    def record_creation(self, run_id: str, seq: int, payload: Mapping[str, Any]) -> str:
        """Journal a template about to be created (`mappings suggest --create-missing`)."""
        journal_id = f"{run_id}-{seq:05d}"
        body = json.dumps(dict(payload), sort_keys=True)
        with self._db.write() as conn:
            conn.execute(
                _intent(
                    journal_id,
                    run_id=run_id,
                    seq=seq,
                    action="create-template",
                    certificate_ids=[],
                    payload=body,
                    at=utcnow(),
                )
            )
        return journal_id

    def record_creation_outcome(
        self, journal_id: str, template_id: int | None, outcome: str, error: str | None = None
    ) -> None:
        with self._db.write() as conn:
            conn.execute(
                update(_J)
                .where(_J.c.id == journal_id)
                .values(
                    outcome=outcome,
                    outcome_at=utcnow(),
                    error=error,
                    certificate_ids=json.dumps([] if template_id is None else [template_id]),
                )
            )

    def recover(self) -> tuple[int, int]:
        """Close runs a crash left open; mark their unfinished writes unknown and their
        templates dirty, so the next cycle reads Monotree to learn what happened.

        Call with the writer lock held, or a live run would be recovered under it.
        """
        with self._db.write() as conn:
            open_writes = list(conn.execute(select(_J).where(_J.c.outcome.is_(None))))
            for row in open_writes:
                mark_dirty(conn, json.loads(row.certificate_ids))
            close_items(conn, [row.id for row in open_writes], "unknown", utcnow())
            conn.execute(
                update(_J)
                .where(_J.c.outcome.is_(None))
                .values(outcome="unknown", outcome_at=utcnow(), error="interrupted: recovered")
            )
            closed = conn.execute(
                update(_R)
                .where(and_(_R.c.ended_at.is_(None), _R.c.kind != "dry"))
                .values(ended_at=utcnow(), outcome="interrupted")
            ).rowcount
        return closed, len(open_writes)

    def recent_runs(self, limit: int = 10) -> list[RunSummary]:
        with self._db.read() as conn:
            rows = conn.execute(select(_R).order_by(_R.c.started_at.desc()).limit(limit))
            return [
                RunSummary(
                    r.id,
                    r.kind,
                    r.started_at,
                    r.ended_at,
                    r.outcome,
                    json.loads(r.counts or "{}"),
                    json.loads(r.requests or "{}"),
                    r.error,
                )
                for r in rows
            ]

    def entries(self, run_id: str | None = None) -> list[JournalEntry]:
        with self._db.read() as conn:
            query = select(_J).order_by(_J.c.run_id, _J.c.seq)
            if run_id is not None:
                query = query.where(_J.c.run_id == run_id)
            return [
                JournalEntry(
                    r.id,
                    r.run_id,
                    r.seq,
                    r.action,
                    tuple(json.loads(r.certificate_ids)),
                    json.loads(r.payload),
                    r.intent_at,
                    r.outcome,
                    r.outcome_at,
                    r.error,
                )
                for r in conn.execute(query)
            ]
