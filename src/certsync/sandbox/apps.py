"""The two simulated APIs as Starlette apps, each behind its gate (`gate.py`).

Handlers only apply the rules in `state.py`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Awaitable, Callable
from datetime import datetime
from email.utils import formatdate, parsedate_to_datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from certsync.clients.pagination import PER_PAGE
from certsync.sandbox.gate import PREFIX, Gate
from certsync.sandbox.state import SandboxState, Template, iso
from certsync.sandbox.webhooks import webhook_routes
from certsync.sandbox.writelog import assigned_pairs, reset_pairs

Handler = Callable[[Request], Awaitable[Response]]


def _page(
    request: Request,
    items: list[Any],
    build: Callable[[list[Any]], list[Any]] | None = None,
) -> JSONResponse:
    """Monotree's envelope: data, links (absolute URLs) and meta. `build` turns the
    page's slice of `items` into JSON, so only the page is ever built."""
    try:
        page = max(1, int(request.query_params.get("page", "1")))
        per_page = min(PER_PAGE, max(1, int(request.query_params.get("per_page", "25"))))
    except ValueError:
        return JSONResponse({"message": "The page must be an integer."}, status_code=422)
    total = len(items)
    last = max(1, math.ceil(total / per_page))
    chunk = items[(page - 1) * per_page : page * per_page]
    if build is not None:
        chunk = build(chunk)

    def link(n: int) -> str:
        return str(request.url.include_query_params(page=n, per_page=per_page))

    return JSONResponse(
        {
            "data": chunk,
            "links": {
                "first": link(1),
                "last": link(last),
                "prev": link(page - 1) if page > 1 else None,
                "next": link(page + 1) if page < last else None,
            },
            "meta": {
                "current_page": page,
                "last_page": last,
                "per_page": per_page,
                "total": total,
                "from": (page - 1) * per_page + 1 if chunk else None,
                "to": (page - 1) * per_page + len(chunk) if chunk else None,
            },
        }
    )


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _token(request: Request) -> str:
    return request.headers.get("authorization", "").removeprefix("Bearer ").strip()


def monotree_app(state: SandboxState) -> ASGIApp:
    def _id(request: Request, name: str = "id") -> int:
        return int(request.path_params[name])

    async def list_certificates(request: Request) -> Response:
        q = request.query_params
        with state.lock:
            items = [t for t in state.templates.values() if not t.deleted]
            if q.get("is_published") in ("true", "false"):
                want = q["is_published"] == "true"
                items = [t for t in items if t.is_published == want]
            if q.get("title"):
                items = [t for t in items if q["title"].lower() in t.title.lower()]
            if q.get("since"):
                try:
                    since = datetime.fromisoformat(q["since"])
                except ValueError:
                    return JSONResponse({"message": "The since is not a valid date."}, 422)
                items = [t for t in items if t.created_at >= since]
            data = [state.template_json(t) for t in sorted(items, key=lambda t: t.id)]
        return _page(request, data)

    async def get_certificate(request: Request) -> Response:
        with state.lock:
            t = state.live_template(_id(request))
            if t is None:
                return JSONResponse({"message": "Not found."}, 404)
            return JSONResponse({"data": state.template_json(t)})

    def _validate_template(
        body: Any, *, partial: bool
    ) -> tuple[dict[str, Any], dict[str, list[str]]]:
        errors: dict[str, list[str]] = {}
        if not isinstance(body, dict):
            return {}, {"body": ["The body must be a JSON object."]}
        if not partial and not isinstance(body.get("title"), str):
            errors["title"] = ["The title field is required."]
        days = body.get("reset_days_before_expiry")
        if days is not None and (not isinstance(days, int) or not 14 <= days <= 365):
            errors["reset_days_before_expiry"] = ["Must be between 14 and 365."]
        return body, errors

    async def create_certificate(request: Request) -> Response:
        body, errors = _validate_template(await _json_body(request), partial=False)
        if errors:
            return JSONResponse({"message": "The given data was invalid.", "errors": errors}, 422)
        with state.lock:
            new_id = max(state.templates, default=0) + 1
            t = Template(
                id=new_id,
                title=body["title"],
                description=body.get("description"),
                validity_months=body.get("validity_months"),
                reset_days_before_expiry=body.get("reset_days_before_expiry"),
                certificate_type_id=body.get("certificate_type_id"),
                is_published=bool(body.get("is_published", False)),
                created_at=state.clock(),
                updated_at=state.clock(),
            )
            state.templates[new_id] = t
            return JSONResponse({"data": state.template_json(t)}, status_code=201)

    async def update_certificate(request: Request) -> Response:
        body, errors = _validate_template(await _json_body(request), partial=True)
        if errors:
            return JSONResponse({"message": "The given data was invalid.", "errors": errors}, 422)
        with state.lock:
            t = state.live_template(_id(request))
            if t is None:
                return JSONResponse({"message": "Not found."}, 404)
            for key in (
                "title",
                "description",
                "validity_months",
                "reset_days_before_expiry",
                "certificate_type_id",
                "is_published",
            ):
                if key in body:
                    setattr(t, key, body[key])
            t.updated_at = state.clock()
            return JSONResponse({"data": state.template_json(t)})

    async def delete_certificate(request: Request) -> Response:
        with state.lock:
            t = state.live_template(_id(request))
            if t is None:
                return JSONResponse({"message": "Not found."}, 404)
            t.deleted = True
        return Response(status_code=204)

    async def holders(request: Request) -> Response:
        cert = _id(request)
        with state.lock:
            if state.live_template(cert) is None:
                return JSONResponse({"message": "Not found."}, 404)
            return _page(request, state.holders(cert), lambda ids: state.holder_items(cert, ids))

    async def assign(request: Request) -> Response:
        body = await _json_body(request)
        with state.lock:
            state.saw_write(_token(request), "assign", assigned_pairs(body))
            status, answer = state.assign(body)
        return Response(status_code=204) if answer is None else JSONResponse(answer, status)

    async def reset(request: Request) -> Response:
        body = await _json_body(request)
        cert = _id(request)
        with state.lock:
            state.saw_write(_token(request), "reset", reset_pairs(cert, body))
            status, answer = state.reset(cert, body)
        return Response(status_code=204) if answer is None else JSONResponse(answer, status)

    def _user_certs(user_id: int) -> list[dict[str, Any]]:
        out = []
        for cert, issuance in sorted(state.by_user.get(user_id, {}).items()):
            t = state.live_template(cert)
            if t is None:
                continue
            tj = state.template_json(t)
            out.append(
                {
                    "id": t.id,
                    "title": t.title,
                    "description": t.description,
                    "validity_months": t.validity_months,
                    "issued_at": iso(issuance.issued_at),
                    "expires_at": iso(issuance.expires_at),
                    "is_expired": issuance.is_expired(state.clock()),
                    "certificate_type": tj["certificate_type"],
                    "history": list(issuance.history),
                }
            )
        return out

    async def user_certificates(request: Request) -> Response:
        with state.lock:
            user = state.users.get(_id(request))
            if user is None or not user.listed:
                return JSONResponse({"message": "Not found."}, 404)
            return _page(request, _user_certs(user.id))

    async def user_certificate(request: Request) -> Response:
        with state.lock:
            user = state.users.get(_id(request))
            cert = _id(request, "certificate_id")
            found = [c for c in _user_certs(user.id) if c["id"] == cert] if user else []
            if user is None or not user.listed or not found:
                return JSONResponse({"message": "Not found."}, 404)
            return JSONResponse({"data": found[0]})

    async def list_users(request: Request) -> Response:
        with state.lock:
            data = [u.as_json() for _, u in sorted(state.users.items()) if u.listed]
        return _page(request, data)

    async def get_user(request: Request) -> Response:
        with state.lock:
            user = state.users.get(_id(request))
            if user is None or not user.listed:
                return JSONResponse({"message": "Not found."}, 404)
            return JSONResponse({"data": user.as_json()})

    async def counts(_: Request) -> Response:
        with state.lock:
            return JSONResponse({"requests": dict(state.counts), "statuses": dict(state.statuses)})

    routes = [
        Route(f"{PREFIX}/certificates", list_certificates, methods=["GET"]),
        Route(f"{PREFIX}/certificates", create_certificate, methods=["POST"]),
        Route(f"{PREFIX}/certificates/assign", assign, methods=["POST"]),
        Route(f"{PREFIX}/certificates/{{id:int}}", get_certificate, methods=["GET"]),
        Route(f"{PREFIX}/certificates/{{id:int}}", update_certificate, methods=["PUT", "PATCH"]),
        Route(f"{PREFIX}/certificates/{{id:int}}", delete_certificate, methods=["DELETE"]),
        Route(f"{PREFIX}/certificates/{{id:int}}/users", holders, methods=["GET"]),
        Route(f"{PREFIX}/certificates/{{id:int}}/reset", reset, methods=["POST"]),
        Route(f"{PREFIX}/users", list_users, methods=["GET"]),
        Route(f"{PREFIX}/users/{{id:int}}", get_user, methods=["GET"]),
        Route(f"{PREFIX}/users/{{id:int}}/certificates", user_certificates, methods=["GET"]),
        Route(
            f"{PREFIX}/users/{{id:int}}/certificates/{{certificate_id:int}}",
            user_certificate,
            methods=["GET"],
        ),
        Route("/_sandbox/requests", counts, methods=["GET"]),
        *webhook_routes(state),
    ]
    return Gate(Starlette(routes=routes), state, "monotree")


def _http_date(text: str) -> float | None:
    try:
        return parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError):
        return None


def natecosmic_app(state: SandboxState) -> ASGIApp:
    async def certifications(request: Request) -> Response:
        with state.lock:
            raw = state.natecosmic_body
            if raw is not None and len(raw) > 1_000_000:
                # Large bodies go out chunked, without a Content-Length, as a proxy might send them.
                chunks = [raw[i : i + 1_000_000] for i in range(0, len(raw), 1_000_000)]
                return StreamingResponse(iter(chunks), media_type="application/json")
            if raw is not None:
                return Response(raw, media_type="text/html")
            body = state.pull_body()
            tag = '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'
            changed = state.pull_changed(tag)
            etags, modified = state.etags, state.last_modified
        headers = {}
        if etags:
            headers["ETag"] = tag
        if modified:
            headers["Last-Modified"] = formatdate(changed, usegmt=True)
        # As RFC 9110 has it: If-None-Match when sent, else If-Modified-Since.
        if etags and "if-none-match" in request.headers:
            asked = {t.strip() for t in request.headers["if-none-match"].split(",")}
            if tag in asked:
                return Response(status_code=304, headers=headers)
        elif modified and "if-modified-since" in request.headers:
            since = _http_date(request.headers["if-modified-since"])
            if since is not None and int(changed) <= since:
                return Response(status_code=304, headers=headers)
        return Response(body, media_type="application/json", headers=headers)

    async def counts(_: Request) -> Response:
        with state.lock:
            return JSONResponse({"requests": dict(state.counts), "statuses": dict(state.statuses)})

    routes = [
        Route("/v1/certifications", certifications, methods=["GET"]),
        Route("/_sandbox/requests", counts, methods=["GET"]),
    ]
    return Gate(Starlette(routes=routes), state, "natecosmic")
