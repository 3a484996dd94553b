"""Held-back plans: the revocations the mass-revoke guard stopped, kept under their run
until a person approves or rejects them, or a later run that decides otherwise supersedes
them."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, insert, select, update

from certsync.actions import Revoke
from certsync.errors import CertsyncError
from certsync.store.db import Db, table_of
from certsync.store.lock import utcnow
from certsync.store.tables import HeldPlanRow, HeldRevokeRow

_P = table_of(HeldPlanRow)
_V = table_of(HeldRevokeRow)


class HeldPlanError(CertsyncError):
    """An approve or reject that cannot be done: an unknown id, or one already decided."""


@dataclass(frozen=True, slots=True)
class HeldPlan:
    run_id: str
    held_at: datetime
    reason: str
    digests: dict[str, str]
    status: str
    revokes: tuple[Revoke, ...]
    decided_by: str | None = None
    decided_at: datetime | None = None
    decided_run_id: str | None = None


class HeldPlans:
    def __init__(self, db: Db) -> None:
        self._db = db

    def keep(
        self,
        run_id: str,
        reason: str,
        revokes: Iterable[Revoke],
        digests: Mapping[str, str],
        *,
        kind: str = "mass-revoke",
    ) -> str:
        """Keep the held-back revocations of `run_id`; the id of the plan that holds them,
        which is an earlier one still held when it has exactly these pairs."""
        revokes = tuple(revokes)
        for plan in self.pending():
            if set(plan.revokes) == set(revokes):
                return plan.run_id
        rows = [
            {
                "run_id": run_id,
                "certificate_id": v.certificate_id,
                "user_id": v.user_id,
                "owned": v.owned,
                "unmapped": v.unmapped,
            }
            for v in revokes
        ]
        with self._db.write() as conn:
            conn.execute(
                insert(_P).values(
                    run_id=run_id,
                    held_at=utcnow(),
                    reason=reason,
                    kind=kind,
                    digests=json.dumps(dict(digests), sort_keys=True),
                    status="held",
                )
            )
            if rows:
                conn.execute(insert(_V), rows)
        return run_id

    def supersede(self, *, by_run: str, keep: str | None = None) -> int:
        """A run for everyone decided afresh: every plan still held but `keep` is superseded."""
        with self._db.write() as conn:
            return conn.execute(
                update(_P)
                .where(_P.c.status == "held", _P.c.run_id != (keep or by_run))
                .values(status="superseded", decided_at=utcnow(), decided_run_id=by_run)
            ).rowcount

    def pending(self) -> list[HeldPlan]:
        with self._db.read() as conn:
            ids = [r for (r,) in conn.execute(select(_P.c.run_id).where(_P.c.status == "held"))]
        return [p for p in (self.get(i) for i in ids) if p is not None]

    def pending_count(self) -> int:
        return sum(self.pending_by_reason().values())

    def pending_by_reason(self) -> dict[str, int]:
        """Revocations waiting for a decision, by the reason they were held back."""
        query = (
            select(_P.c.kind, func.count())
            .select_from(_V.join(_P, _P.c.run_id == _V.c.run_id))
            .where(_P.c.status == "held")
            .group_by(_P.c.kind)
        )
        with self._db.read() as conn:
            return {str(reason): int(n) for reason, n in conn.execute(query)}

    def get(self, run_id: str) -> HeldPlan | None:
        with self._db.read() as conn:
            row = conn.execute(select(_P).where(_P.c.run_id == run_id)).first()
            if row is None:
                return None
            revokes = tuple(
                Revoke(r.certificate_id, r.user_id, bool(r.owned), bool(r.unmapped))
                for r in conn.execute(
                    select(_V)
                    .where(_V.c.run_id == run_id)
                    .order_by(_V.c.certificate_id, _V.c.user_id)
                )
            )
        return HeldPlan(
            row.run_id,
            row.held_at,
            row.reason,
            json.loads(row.digests),
            row.status,
            revokes,
            row.decided_by,
            row.decided_at,
            row.decided_run_id,
        )

    def open_for_decision(self, run_id: str) -> HeldPlan:
        """The plan, or a HeldPlanError that says why it cannot be decided on."""
        plan = self.get(run_id)
        if plan is None:
            raise HeldPlanError(
                f"no held-back plan has the id {run_id!r}: `certsync status` lists them"
            )
        if plan.status != "held":
            when = f" at {plan.decided_at:%Y-%m-%d %H:%M} UTC" if plan.decided_at else ""
            by = f" by {plan.decided_by}" if plan.decided_by else ""
            raise HeldPlanError(f"the held-back plan {run_id} was already {plan.status}{by}{when}")
        return plan

    def decide(
        self,
        run_id: str,
        status: str,
        *,
        by: str,
        decided_run_id: str | None = None,
        outcomes: Mapping[tuple[int, int], tuple[str, str | None]] | None = None,
    ) -> None:
        """Record the decision (approved or rejected), and what approving did to each pair.

        Only a plan still held is changed, so two deciders cannot both win."""
        with self._db.write() as conn:
            done = conn.execute(
                update(_P)
                .where(_P.c.run_id == run_id, _P.c.status == "held")
                .values(
                    status=status,
                    decided_by=by,
                    decided_at=utcnow(),
                    decided_run_id=decided_run_id,
                )
            ).rowcount
            if not done:
                raise HeldPlanError(f"the held-back plan {run_id} is no longer held")
            for (cert, user), (outcome, note) in (outcomes or {}).items():
                conn.execute(
                    update(_V)
                    .where(_V.c.run_id == run_id, _V.c.certificate_id == cert, _V.c.user_id == user)
                    .values(outcome=outcome, note=note)
                )
