"""Runs asked for through the admin API: a ticket each, to follow from queued to done."""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Any, Literal

State = Literal["queued", "running", "done", "failed"]


@dataclass(frozen=True)
class RunTicket:
    id: str
    reason: str
    users: tuple[int, ...] | None  # None: everything
    requested_at: float
    state: State = "queued"
    started_at: float | None = None
    finished_at: float | None = None
    run_id: str | None = None  # the journal's run, once it started
    outcome: str | None = None
    error: str | None = None
    counts: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "reason": self.reason,
            "users": None if self.users is None else list(self.users),
            "state": self.state,
            "requested_at": self.requested_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "run_id": self.run_id,
            "outcome": self.outcome,
            "error": self.error,
            "counts": self.counts,
        }


class Tickets:
    """The last `keep` tickets, by id; written by the cycle thread, read by HTTP."""

    def __init__(self, keep: int = 200) -> None:
        self._keep = keep
        self._lock = threading.Lock()
        self._tickets: OrderedDict[str, RunTicket] = OrderedDict()

    def open(self, reason: str, users: tuple[int, ...] | None, now: float) -> RunTicket:
        ticket = RunTicket(uuid.uuid4().hex[:16], reason, users, now)
        with self._lock:
            self._tickets[ticket.id] = ticket
            while len(self._tickets) > self._keep:
                self._tickets.popitem(last=False)
        return ticket

    def get(self, ticket_id: str) -> RunTicket | None:
        with self._lock:
            return self._tickets.get(ticket_id)

    def update(self, ticket_id: str | None, **changes: Any) -> None:
        if ticket_id is None:
            return
        with self._lock:
            ticket = self._tickets.get(ticket_id)
            if ticket is not None:
                self._tickets[ticket_id] = replace(ticket, **changes)
