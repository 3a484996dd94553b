"""The Monotree sandbox's outgoing webhooks: an invite accepted, a signed delivery sent.

`POST /_sandbox/webhooks {"url", "secret"}` subscribes an endpoint (loopback only);
`POST /_sandbox/users/{id}/register` accepts a pending invite and delivers
`monotree.user.registered` to every endpoint, retrying as a real sender would
(five attempts, 0.2 s doubling) until one answers 2xx.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

if TYPE_CHECKING:
    from certsync.sandbox.state import SandboxState

ATTEMPTS = 5


def _loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class Outbox:
    """Endpoints subscribed, and every delivery attempt made (for tests to read)."""

    targets: list[tuple[str, str]] = field(default_factory=list)
    attempts: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def envelope(self, user: Any) -> bytes:
        doc = {
            "id": str(uuid.uuid4()),
            "event": "monotree.user.registered",
            "version": "v1",
            "timestamp": int(time.time()),
            "payload": {"id": user.id, "email": user.email, "name": user.name},
        }
        return json.dumps(doc).encode()

    def deliver(self, body: bytes) -> None:
        """Send to every endpoint, each in a thread of its own, with retries."""
        for url, secret in list(self.targets):
            threading.Thread(
                target=self._send, args=(url, secret, body), name="sandbox-webhook", daemon=True
            ).start()

    def _send(self, url: str, secret: str, body: bytes) -> None:
        wait = 0.2
        for attempt in range(1, ATTEMPTS + 1):
            stamp = str(int(time.time()))
            signature = hmac.new(
                secret.encode(), stamp.encode() + b"." + body, hashlib.sha256
            ).hexdigest()
            try:
                status = httpx.post(
                    url,
                    content=body,
                    headers={
                        "Content-Type": "application/json",
                        "Timestamp": stamp,
                        "Signature": signature,
                    },
                    timeout=5,
                ).status_code
            except httpx.HTTPError:
                status = 0
            with self.lock:
                self.attempts.append(
                    {"url": url, "attempt": attempt, "status": status, "at": time.time()}
                )
            if 200 <= status < 300:
                return
            time.sleep(wait)
            wait *= 2


def webhook_routes(state: SandboxState) -> list[Route]:
    async def subscribe(request: Request) -> Response:
        body = await request.json()
        url, secret = body.get("url"), body.get("secret")
        if not isinstance(url, str) or not isinstance(secret, str) or not _loopback(url):
            return JSONResponse({"message": "url (loopback only) and secret required"}, 422)
        state.outbox.targets.append((url, secret))
        return JSONResponse({"subscribed": url}, 201)

    async def register(request: Request) -> Response:
        uid = int(request.path_params["id"])
        with state.lock:
            user = state.users.get(uid)
            if user is None:
                return JSONResponse({"message": "Not found."}, 404)
            state.update_user(uid, registered=True)
        state.outbox.deliver(state.outbox.envelope(user))
        return JSONResponse({"registered": uid, "delivered_to": len(state.outbox.targets)})

    return [
        Route("/_sandbox/webhooks", subscribe, methods=["POST"]),
        Route("/_sandbox/users/{id:int}/register", register, methods=["POST"]),
    ]
