"""The daemon's HTTP face: /healthz (alive), /readyz (working), /metrics (Prometheus),
and the admin API when it is on (`service/admin.py`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

if TYPE_CHECKING:  # the daemon imports this module to serve itself
    from certsync.service.daemon import Daemon


def health_app(daemon: Daemon, admin: list[Route] | None = None) -> Starlette:
    """Health and metrics; with `admin`, the admin API's routes beside them."""

    async def healthz(_: Request) -> Response:
        h = daemon.health
        return JSONResponse(
            {
                "status": "alive",
                "runs": h.runs,
                "last_outcome": h.last_outcome,
                "consecutive_failures": h.consecutive_failures,
                "last_error": h.last_error,
            }
        )

    async def readyz(_: Request) -> Response:
        ready, reason = daemon.readiness()
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "reason": reason},
            status_code=200 if ready else 503,
        )

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(daemon.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
            *(admin or []),
        ]
    )
