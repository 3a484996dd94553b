"""Webhook deliveries: recorded before the receiver answers, handled by the cycle runner."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Delete, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from certsync.errors import StoreError
from certsync.store.db import Db, chunks, table_of, translated
from certsync.store.lock import utcnow
from certsync.store.tables import WebhookDeliveryRow

_D = table_of(WebhookDeliveryRow)
KEEP = timedelta(hours=24)
# (delivery id, event, Monotree user id, email)
Received = tuple[str, str, int | None, str | None]


def _forget(now: datetime) -> Delete:
    """Handled deliveries older than a day; one still waiting is kept until handled."""
    return delete(_D).where(_D.c.received_at < now - KEEP, _D.c.state != "received")


@dataclass(frozen=True, slots=True)
class Delivery:
    id: str
    event: str
    user_id: int | None
    email: str | None
    received_at: datetime
    state: str
    run_id: str | None = None


class Deliveries:
    def __init__(self, db: Db) -> None:
        self._db = db

    def record(self, delivery_id: str, event: str, user_id: int | None, email: str | None) -> bool:
        """Keep a delivery; False when its id was seen in the last day (a redelivery)."""
        now = utcnow()
        self._db.require_current()
        with translated("could not be written"), self._db.engine.begin() as conn:
            conn.execute(_forget(now))
            try:
                with conn.begin_nested():
                    conn.execute(
                        insert(_D).values(
                            id=delivery_id,
                            event=event,
                            user_id=user_id,
                            email=email,
                            received_at=now,
                            state="received",
                        )
                    )
            except IntegrityError:
                return False
        return True

    def record_many(self, items: Sequence[Received]) -> list[bool]:
        """Keep several deliveries in one transaction (the receiver groups those that
        arrive together); for each, False when its id was already seen (a redelivery)."""
        now = utcnow()
        ids = sorted({i[0] for i in items})
        # Redeliveries only (a sender's retries, often many at once) are known from a read,
        # which waits for no writer: the write lock is for what is new.
        remembered = (_D.c.received_at >= now - KEEP) | (_D.c.state == "received")
        with self._db.read() as conn:
            found = conn.execute(select(_D.c.id).where(_D.c.id.in_(ids), remembered))
            known = {r for (r,) in found}
        if known.issuperset(ids):
            return [False] * len(items)
        try:
            with self._db.write_promptly() as conn:
                conn.execute(_forget(now))
                seen = {r for (r,) in conn.execute(select(_D.c.id).where(_D.c.id.in_(ids)))}
                fresh, rows = [], []
                for delivery_id, event, user_id, email in items:
                    fresh.append(delivery_id not in seen)
                    if delivery_id in seen:
                        continue
                    seen.add(delivery_id)
                    rows.append(
                        {
                            "id": delivery_id,
                            "event": event,
                            "user_id": user_id,
                            "email": email,
                            "received_at": now,
                            "state": "received",
                        }
                    )
                if rows:
                    conn.execute(insert(_D), rows)
            return fresh
        except StoreError:
            # Another writer took one of these ids meanwhile: one at a time, then.
            return [self.record(*item) for item in items]

    def get(self, delivery_ids: Sequence[str]) -> list[Delivery]:
        """These deliveries, as recorded, in the order asked; an id not in the store is
        left out."""
        rows = {}
        with self._db.read() as conn:
            for chunk in chunks(sorted(set(delivery_ids))):
                for r in conn.execute(select(_D).where(_D.c.id.in_(chunk))):
                    rows[r.id] = Delivery(
                        r.id, r.event, r.user_id, r.email, r.received_at, r.state, r.run_id
                    )
        return [rows[i] for i in dict.fromkeys(delivery_ids) if i in rows]

    def waiting(self) -> list[str]:
        """Deliveries received and not handled yet (a restart picks them up)."""
        with self._db.read() as conn:
            rows = conn.execute(
                select(_D.c.id).where(_D.c.state == "received").order_by(_D.c.received_at)
            )
            return [r for (r,) in rows]

    def handled(self, delivery_ids: Sequence[str], state: str, run_id: str | None = None) -> None:
        """Say how waiting deliveries were handled, in one transaction; one handled already
        keeps its state (a replica that no longer leads cannot turn another's "applied"
        into "failed")."""
        if not delivery_ids:
            return
        now = utcnow()
        with self._db.write() as conn:
            for chunk in chunks(sorted(set(delivery_ids))):
                conn.execute(
                    update(_D)
                    .where(_D.c.id.in_(chunk), _D.c.state == "received")
                    .values(state=state, handled_at=now, run_id=run_id)
                )
