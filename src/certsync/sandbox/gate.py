"""The ASGI gate in front of each simulated API: what every endpoint shares.

Counting, injected faults, latency, bearer tokens (401), Monotree's rate limit
(429 with `Retry-After` and `X-RateLimit-*` on every answer) and scopes (403).
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from certsync.sandbox.state import SandboxState

Handler = Callable[[Request], Awaitable[Response]]
_IDS = re.compile(r"/\d+")
PREFIX = "/api/open/v1"


def _monotree_scope(method: str, path: str) -> str:
    if re.fullmatch(rf"{PREFIX}/users(/\d+)?", path):
        return "read:users"
    return "read:certificates" if method == "GET" else "write:certificates"


class Gate:
    """ASGI middleware: count, inject faults, authenticate, rate-limit, check scopes."""

    def __init__(self, app: ASGIApp, state: SandboxState, api: str) -> None:
        self.app = app
        self.state = state
        self.api = api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        if path.startswith("/_sandbox"):
            await self.app(scope, receive, send)
            return
        state = self.state
        with state.lock:
            state.counts[f"{self.api} {method} {_IDS.sub('/{id}', path)}"] += 1
        if state.faults.latency and self.api in state.faults.apis:
            await asyncio.sleep(state.faults.latency)
        fault = state.pick_fault(self.api, method, path)
        if fault is not None and fault.kind == "delay":
            await asyncio.sleep(fault.delay)
        elif fault is not None and fault.kind == "drop":
            await _drop(send)
            return
        elif fault is not None and fault.kind == "status":
            headers = {}
            if fault.status in (429, 503) and fault.retry_after is not None:
                headers["Retry-After"] = str(math.ceil(fault.retry_after))
            message = "Too Many Attempts." if fault.status == 429 else "Server Error"
            await self._answer(scope, receive, send, fault.status, message, headers)
            return

        token = _bearer(scope)
        scopes = state.tokens[self.api].get(token or "")
        if scopes is None:
            await self._answer(scope, receive, send, 401, "Unauthenticated.", {})
            return
        extra: dict[str, str] = {}
        if self.api == "monotree":
            with state.lock:
                allowed, extra, wait = state.limiter.hit(token or "")
            if not allowed:
                extra["Retry-After"] = str(max(1, math.ceil(wait)))
                await self._answer(scope, receive, send, 429, "Too Many Attempts.", extra)
                return
            needed = _monotree_scope(method, path)
        else:
            needed = "certification_records:read"
        if needed not in scopes:
            await self._answer(scope, receive, send, 403, "This action is unauthorized.", extra)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(k.lower().encode(), v.encode()) for k, v in extra.items()]
                message = {**message, "headers": headers}
                with state.lock:
                    state.statuses[f"{self.api} {message['status']}"] += 1
            await send(message)

        if fault is not None and fault.kind == "drop-after":
            # The request takes effect; the answer never arrives.
            async def swallow(_: Message) -> None:
                return None

            await self.app(scope, receive, swallow)
            await _drop(send)
            return
        if fault is not None and fault.kind == "delay-after":
            # The request takes effect at once; its answer is held back.
            async def send_late(message: Message) -> None:
                if message["type"] == "http.response.start":
                    await asyncio.sleep(fault.delay)
                await send_with_headers(message)

            await self.app(scope, receive, send_late)
            return
        await self.app(scope, receive, send_with_headers)

    async def _answer(self, *args: Any) -> None:
        """(scope, receive, send, status, message, headers): a JSON `{"message": ...}` answer."""
        scope, receive, send, status, message, headers = args
        with self.state.lock:
            self.state.statuses[f"{self.api} {status}"] += 1
        response = JSONResponse({"message": message}, status_code=status, headers=headers)
        await response(scope, receive, send)


async def _drop(send: Send) -> None:
    """Start an answer and break off: the client sees the connection die mid-response."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    raise ConnectionAbortedError("sandbox: connection dropped on purpose")


def _bearer(scope: Scope) -> str | None:
    for key, value in scope.get("headers", []):
        if key == b"authorization":
            text = value.decode("latin-1")
            if text.lower().startswith("bearer "):
                token: str = text[7:].strip()
                return token
    return None
