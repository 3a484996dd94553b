"""Monotree's webhook signature, checked before anything else is read: pure.

`Signature` is the hex HMAC-SHA256 of `Timestamp + "." + raw body` with the
endpoint's secret; a `Timestamp` more than five minutes from now, either way,
is refused (a replay, or a clock far off). During a rotation several secrets
are tried, each in constant time.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import math
from collections.abc import Mapping, Sequence

WINDOW_SECONDS = 300.0


class Check(enum.Enum):
    OK = "ok"
    MISSING = "missing-headers"
    STALE = "stale"
    BAD = "bad-signature"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def check(headers: Mapping[str, str], body: bytes, secrets: Sequence[str], *, now: float) -> Check:
    stamp, given = headers.get("timestamp"), headers.get("signature")
    if not stamp or not given or not secrets:
        return Check.MISSING
    try:
        when = float(stamp)
    except ValueError:
        return Check.STALE
    if not math.isfinite(when) or abs(now - when) > WINDOW_SECONDS:
        return Check.STALE
    # Bytes, not str: compare_digest refuses a str with characters beyond ASCII, and a
    # header is whatever the sender put there.
    given_bytes = given.strip().lower().encode("utf-8", "replace")
    # Every secret is tried, so the time taken does not say which one matched.
    matched = False
    for secret in secrets:
        matched |= hmac.compare_digest(sign(secret, stamp, body).encode(), given_bytes)
    return Check.OK if matched else Check.BAD
