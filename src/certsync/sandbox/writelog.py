"""The sandbox's log of write requests: who sent what, and when.

Off unless a test turns it on (`state.writes = []`): the failover tests give
each replica a token of its own and read from it which replica sent each write,
and whether any pair was asked for twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class WriteSeen:
    """One write request as the sandbox received it."""

    token: str
    kind: str  # "assign" or "reset"
    pairs: frozenset[tuple[int, int]]  # (certificate, user); a reset of everyone has none
    at: float


def assigned_pairs(body: Any) -> list[tuple[int, int]]:
    """(certificate, user) pairs of an assign body, as far as it is well-formed."""
    out: list[tuple[int, int]] = []
    for a in body.get("assignments", []) if isinstance(body, dict) else []:
        cert = a.get("certificate_id") if isinstance(a, dict) else None
        users = a.get("users") if isinstance(a, dict) else None
        if not isinstance(cert, int) or not isinstance(users, list):
            continue
        for u in users:
            user = u.get("user_id") if isinstance(u, dict) else None
            if isinstance(user, int):
                out.append((cert, user))
    return out


def reset_pairs(cert: int, body: Any) -> list[tuple[int, int]]:
    users = body.get("user_ids") if isinstance(body, dict) else None
    return [(cert, u) for u in users if isinstance(u, int)] if isinstance(users, list) else []
