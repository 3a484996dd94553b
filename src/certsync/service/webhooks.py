"""The webhook receiver: `POST /webhooks/monotree`, on a listener of its own.

It answers in milliseconds and does no sync itself: a delivery is checked
(signature over the raw body, timestamp window, size, shape), recorded in the
store through the inbox (a redelivery of a known id is recognised and does
nothing), and handed to the cycle runner. Every refusal is a bare status: nothing is said to a
sender that cannot prove it holds the secret.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from certsync.redaction import Redactor
from certsync.service.envelope import REGISTERED, Malformed, parse
from certsync.service.inbox import Inbox
from certsync.service.signature import Check, check
from certsync.settings import WebhookSettings

if TYPE_CHECKING:
    from certsync.service.metrics import Metrics

log = structlog.get_logger("certsync.service.webhooks")

MAX_BODY = 64 * 1024


class Secrets:
    """The webhook secrets now: from the setting, and from the file read again each time,
    so a rotated secret is used from the next delivery on."""

    def __init__(self, settings: WebhookSettings, redactor: Redactor) -> None:
        given = settings.secrets.get_secret_value() if settings.secrets else ""
        self._fixed = [s.strip() for s in given.split(",") if s.strip()]
        self._file: Path | None = settings.secrets_file
        self._redactor = redactor
        for secret in self._fixed:
            redactor.add(secret)

    @property
    def configured(self) -> bool:
        return bool(self._fixed) or self._file is not None

    def current(self) -> list[str]:
        found = list(self._fixed)
        if self._file is not None:
            try:
                lines = self._file.read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                log.error("webhook.secrets_unreadable", file=str(self._file), error=exc.strerror)
                lines = []
            for line in lines:
                if line.strip():
                    self._redactor.add(line.strip())
                    found.append(line.strip())
        return found


def _answer(status: int, outcome: str, count: Callable[[str], None] | None) -> Response:
    if count is not None:
        count(outcome)
    if status == 401:
        return Response(status_code=401)  # why is for the operator (metrics, log), not the sender
    return JSONResponse({"status": outcome}, status_code=status)


def webhook_app(
    secrets: Secrets,
    inbox: Inbox,
    *,
    metrics: Metrics | None = None,
    count: Callable[[str], None] | None = None,
    clock: Callable[[], float] = time.time,
) -> Starlette:
    """`inbox` keeps each delivery in the store and hands a new one to the cycle runner.
    Each answer is counted by outcome: in `metrics`, or by `count` (the receiver in a
    process of its own tells its parent)."""
    if count is None and metrics is not None:
        deliveries = metrics.deliveries

        def count(outcome: str) -> None:
            deliveries.labels(outcome).inc()

    async def receive(request: Request) -> Response:
        length = request.headers.get("content-length", "")
        if length.isdecimal() and int(length) > MAX_BODY:
            return _answer(413, "too-large", count)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                return _answer(413, "too-large", count)
        verdict = check(request.headers, body, secrets.current(), now=clock())
        if verdict is not Check.OK:
            log.warning("webhook.refused", reason=verdict.value)
            return _answer(401, verdict.value, count)
        try:
            envelope = parse(body)
        except Malformed as exc:
            log.warning("webhook.malformed", reason=str(exc))
            return _answer(400, "malformed", count)
        if envelope.event != REGISTERED:
            return _answer(202, "ignored", count)
        kept = inbox.submit((envelope.id, envelope.event, envelope.user_id, envelope.email))
        if not await asyncio.wrap_future(kept):
            return _answer(200, "duplicate", count)
        log.info("webhook.accepted", delivery=envelope.id, user=envelope.user_id)
        return _answer(202, "accepted", count)

    return Starlette(routes=[Route("/webhooks/monotree", receive, methods=["POST"])])
