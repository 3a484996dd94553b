"""The daemon's admin API: `POST /runs` asks for a sync now (of everything, or of some
people), `GET /runs/{id}` follows it; `GET /plans/held` lists revocations the guard
held back, `POST /plans/{id}/approve` and `.../reject` decide on them. Off unless
CERTSYNC_HTTP__ADMIN_TOKEN (or its `_FILE`, read again on every request so it rotates
in place) is set.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import structlog
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from certsync.engine.scope import Scope
from certsync.people import Person
from certsync.redaction import Redactor
from certsync.settings import HttpListenerSettings
from certsync.store import HeldPlan

if TYPE_CHECKING:  # the daemon imports this module to serve itself
    from certsync.service.daemon import Daemon

log = structlog.get_logger("certsync.service.admin")

MAX_BODY = 64 * 1024


@dataclass(frozen=True)
class Lookups:
    """What the admin API reads from the store, from the HTTP thread pool."""

    find_people: Callable[[Sequence[str]], list[Person]]
    held_pending: Callable[[], list[HeldPlan]]
    held_plan: Callable[[str], HeldPlan | None]


class AdminToken:
    """The bearer token the admin API asks for; compared in constant time."""

    def __init__(self, settings: HttpListenerSettings, redactor: Redactor) -> None:
        self._value = settings.admin_token
        self._file: Path | None = settings.admin_token_file
        self._redactor = redactor

    @property
    def configured(self) -> bool:
        return bool(self._value and self._value.get_secret_value()) or self._file is not None

    def _current(self) -> str | None:
        if self._value is not None and self._value.get_secret_value():
            token = self._value.get_secret_value()
        elif self._file is not None:
            try:
                token = self._file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                log.error("admin.token_unreadable", file=str(self._file), error=exc.strerror)
                return None
        else:
            return None
        if not token:
            return None
        self._redactor.add(token)
        return token

    def accepts(self, authorization: str | None) -> bool:
        expected = self._current()
        scheme, _, given = (authorization or "").partition(" ")
        if expected is None or scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(given.strip().encode(), expected.encode())


def _refused() -> Response:
    return JSONResponse(
        {"error": "a valid bearer token is required (CERTSYNC_HTTP__ADMIN_TOKEN)"},
        status_code=401,
        headers={"WWW-Authenticate": "Bearer"},
    )


def _asked_users(raw: bytes) -> list[str] | str | None:
    """The users asked for; None for everything; a string says what is wrong."""
    if not raw.strip():
        return None
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return "the body is not JSON"
    if not isinstance(body, dict) or set(body) - {"users"}:
        return 'the body is a JSON object with one optional key, "users"'
    users = body.get("users")
    if users is None:
        return None
    if (
        not isinstance(users, list)
        or not users
        or not all(isinstance(u, str | int) and not isinstance(u, bool) for u in users)
    ):
        return '"users" is a non-empty list of user ids or emails'
    return [str(u) for u in users]


def _held_json(plan: HeldPlan) -> dict[str, object]:
    return {
        "run_id": plan.run_id,
        "held_at": plan.held_at.isoformat(),
        "reason": plan.reason,
        "status": plan.status,
        "revocations": len(plan.revokes),
        "revokes": [[v.certificate_id, v.user_id] for v in plan.revokes],
    }


def _decider(raw: bytes) -> str | None:
    """Who decides, from an optional {"by": "name"}; None when the body is not that."""
    if not raw.strip():
        return "admin-api"
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(body, dict) or set(body) - {"by"}:
        return None
    by = body.get("by", "admin-api")
    return by if isinstance(by, str) and 0 < len(by) <= 200 else None


def _standing_by(daemon: Daemon) -> Response | None:
    """A standby runs nothing: a request queued here would wait until it leads. Refused,
    naming the leader, so the caller (or a retrying client) goes there."""
    if daemon.leading:
        return None
    leader = daemon.leadership.leader if daemon.leadership is not None else None
    return JSONResponse(
        {
            "error": "this replica stands by and runs nothing; send it to the leader",
            "leader": leader,
        },
        status_code=503,
        headers={"Retry-After": "5"},
    )


def admin_routes(daemon: Daemon, token: AdminToken, lookups: Lookups) -> list[Route]:
    async def create_run(request: Request) -> Response:
        if not token.accepts(request.headers.get("authorization")):
            return _refused()
        if (refusal := _standing_by(daemon)) is not None:
            return refusal
        raw = await request.body()
        if len(raw) > MAX_BODY:
            return JSONResponse({"error": "the body is over 64 KiB"}, status_code=413)
        asked = _asked_users(raw)
        if isinstance(asked, str):
            return JSONResponse({"error": asked}, status_code=400)
        not_synced: list[str] = []
        scope = Scope()
        if asked is not None:
            people = await run_in_threadpool(lookups.find_people, asked)
            ids = {p.monotree_id for p in people if p.monotree_id is not None}
            not_synced = [p.asked for p in people if p.monotree_id is None]
            if not ids:
                return JSONResponse(
                    {"error": "no user asked for is a Monotree user yet", "not_synced": not_synced},
                    status_code=422,
                )
            scope = Scope.of_users(ids)
        ticket = daemon.request_run("on-demand", scope)
        return JSONResponse(
            {**ticket.as_json(), "not_synced": not_synced, "url": f"/runs/{ticket.id}"},
            status_code=202,
        )

    async def show_run(request: Request) -> Response:
        if not token.accepts(request.headers.get("authorization")):
            return _refused()
        ticket = daemon.tickets.get(request.path_params["run_id"])
        if ticket is None:
            return JSONResponse({"error": "no such run"}, status_code=404)
        return JSONResponse(ticket.as_json())

    async def held_plans(request: Request) -> Response:
        if not token.accepts(request.headers.get("authorization")):
            return _refused()
        plans = await run_in_threadpool(lookups.held_pending)
        return JSONResponse([_held_json(p) for p in plans])

    def deciding(verdict: str) -> Callable[[Request], Awaitable[Response]]:
        async def decide_plan(request: Request) -> Response:
            if not token.accepts(request.headers.get("authorization")):
                return _refused()
            if (refusal := _standing_by(daemon)) is not None:
                return refusal
            by = _decider((await request.body())[: MAX_BODY + 1])
            if by is None:
                return JSONResponse(
                    {"error": 'the body is empty or {"by": "who decides"}'}, status_code=400
                )
            plan_id = request.path_params["plan_id"]
            plan = await run_in_threadpool(lookups.held_plan, plan_id)
            if plan is None:
                return JSONResponse({"error": "no such held-back plan"}, status_code=404)
            if plan.status != "held":
                return JSONResponse(
                    {"error": f"already {plan.status}", "decided_by": plan.decided_by},
                    status_code=409,
                )
            ticket = daemon.request_decision(plan_id, verdict, by)
            return JSONResponse({**ticket.as_json(), "url": f"/runs/{ticket.id}"}, status_code=202)

        return decide_plan

    return [
        Route("/runs", create_run, methods=["POST"]),
        Route("/runs/{run_id}", show_run, methods=["GET"]),
        Route("/plans/held", held_plans, methods=["GET"]),
        Route("/plans/{plan_id}/approve", deciding("approve"), methods=["POST"]),
        Route("/plans/{plan_id}/reject", deciding("reject"), methods=["POST"]),
    ]
