"""ASGI apps served by uvicorn from a background thread: the sandbox, the health port."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence

import uvicorn
from starlette.types import ASGIApp


class ServerThread:
    """Serves one or more apps on `host`, each on its own port (0: any free port)."""

    def __init__(self, apps: Sequence[tuple[ASGIApp, int]], *, host: str = "127.0.0.1") -> None:
        self.host = host
        self._servers = [
            uvicorn.Server(
                uvicorn.Config(
                    app,
                    host=host,
                    port=port,
                    log_level="critical",
                    access_log=False,
                    lifespan="off",
                    timeout_graceful_shutdown=1,
                )
            )
            for app, port in apps
        ]
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    def port(self, index: int = 0) -> int:
        return int(self._servers[index].servers[0].sockets[0].getsockname()[1])

    def url(self, index: int = 0) -> str:
        return f"http://{self.host}:{self.port(index)}"

    def start(self, timeout: float = 10.0) -> None:
        async def serve() -> None:
            await asyncio.gather(*(s.serve() for s in self._servers))

        def run() -> None:
            try:
                asyncio.run(serve())
            except BaseException as exc:
                self._failure = exc

        self._thread = threading.Thread(target=run, name="certsync-http", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not all(s.started for s in self._servers):
            if self._failure is not None or not self._thread.is_alive():
                raise RuntimeError(
                    f"could not listen on {self.host} (is the port already in use?): "
                    f"{self._failure!r}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"could not listen on {self.host} in {timeout:.0f}s")
            time.sleep(0.01)

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        for s in self._servers:
            s.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
