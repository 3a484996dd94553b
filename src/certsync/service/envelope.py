"""A webhook delivery's envelope, read defensively: pure.

Monotree documents the envelope (`id`, `event`, `version`, `timestamp`,
`payload`) but not the payload of `monotree.user.registered`. certsync reads the
user's id from `payload.id`, `payload.user_id` or `payload.user.id`, and the
email from `payload.email` or `payload.user.email` (docs/api-assumptions.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from certsync.models import normal_email

REGISTERED = "monotree.user.registered"


@dataclass(frozen=True, slots=True)
class Envelope:
    id: str
    event: str
    user_id: int | None = None
    email: str | None = None


class Malformed(ValueError):
    """Not an envelope certsync can read."""


# Monotree's ids are integers; the store keeps them in 32 bits (PostgreSQL's INTEGER).
MAX_ID = 2**31 - 1


def _user_id(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 12:
        value = int(value)
    if isinstance(value, int) and 0 < value <= MAX_ID:
        return value
    return None


def _email(value: Any) -> str | None:
    if isinstance(value, str) and "@" in value and len(value) <= 320:
        return normal_email(value)
    return None


def parse(body: bytes) -> Envelope:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise Malformed("the body is not JSON") from None
    if not isinstance(doc, dict):
        raise Malformed("the body is not a JSON object")
    delivery, event = doc.get("id"), doc.get("event")
    if not isinstance(delivery, str) or not delivery or len(delivery) > 200:
        raise Malformed("the envelope has no id")
    if not isinstance(event, str) or not event:
        raise Malformed("the envelope has no event")
    if event != REGISTERED:
        return Envelope(delivery, event)
    payload = doc.get("payload")
    if not isinstance(payload, dict):
        raise Malformed("monotree.user.registered without a payload object")
    nested = payload.get("user")
    user: dict[str, Any] = nested if isinstance(nested, dict) else {}
    user_id = (
        _user_id(payload.get("id")) or _user_id(payload.get("user_id")) or _user_id(user.get("id"))
    )
    email = _email(payload.get("email")) or _email(user.get("email"))
    if user_id is None:
        raise Malformed("monotree.user.registered without a user id")
    return Envelope(delivery, event, user_id, email)
