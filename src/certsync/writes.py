"""Write requests: a plan batched into the bodies Monotree accepts, in sending order.

Both kinds answer the same questions (what action, which certificates and
users, what payload, how to split in two), so the code that journals, sends,
splits and reports them asks instead of switching on their type.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, ClassVar, Literal

Action = Literal["assign", "reset"]


@dataclass(frozen=True, slots=True)
class AssignItem:
    certificate_id: int
    user_id: int
    completed_at: date


@dataclass(frozen=True, slots=True)
class AssignRequest:
    """One `POST /certificates/assign` body."""

    action: ClassVar[Action] = "assign"
    items: tuple[AssignItem, ...]

    def certificate_ids(self) -> tuple[int, ...]:
        return tuple(sorted({i.certificate_id for i in self.items}))

    def users(self) -> tuple[int, ...]:
        return tuple(sorted({i.user_id for i in self.items}))

    def halves(self) -> tuple[AssignRequest, AssignRequest] | None:
        """Two bodies of half the items each, to isolate an entry Monotree refuses."""
        if len(self.items) < 2:
            return None
        mid = len(self.items) // 2
        return AssignRequest(self.items[:mid]), AssignRequest(self.items[mid:])

    def payload(self) -> dict[str, Any]:
        return {
            "items": [[i.certificate_id, i.user_id, i.completed_at.isoformat()] for i in self.items]
        }

    def summary(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "users": len(self.items),
            "certificates": list(self.certificate_ids()),
        }


@dataclass(frozen=True, slots=True)
class ResetRequest:
    """One `POST /certificates/{id}/reset` body with `expire: true`.

    `revoke_user_ids` are the users whose holding ends; the others are the first
    half of a renewal.
    """

    action: ClassVar[Action] = "reset"
    certificate_id: int
    user_ids: tuple[int, ...]
    notify: bool
    revoke_user_ids: tuple[int, ...] = ()

    def certificate_ids(self) -> tuple[int, ...]:
        return (self.certificate_id,)

    def users(self) -> tuple[int, ...]:
        return self.user_ids

    def halves(self) -> tuple[ResetRequest, ResetRequest] | None:
        if len(self.user_ids) < 2:
            return None
        mid = len(self.user_ids) // 2
        return self._of(self.user_ids[:mid]), self._of(self.user_ids[mid:])

    def _of(self, users: tuple[int, ...]) -> ResetRequest:
        revoking = tuple(u for u in users if u in self.revoke_user_ids)
        return ResetRequest(self.certificate_id, users, self.notify, revoking)

    def payload(self) -> dict[str, Any]:
        return {
            "user_ids": list(self.user_ids),
            "notify": self.notify,
            "revoke_user_ids": list(self.revoke_user_ids),
        }

    def summary(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "certificate": self.certificate_id,
            "users": len(self.user_ids),
        }


WriteRequest = AssignRequest | ResetRequest
