"""Both simulators served by uvicorn on 127.0.0.1, in a background thread or in the foreground."""

from __future__ import annotations

import asyncio
import threading
import time
from types import TracebackType

import uvicorn

from certsync.sandbox.apps import monotree_app, natecosmic_app
from certsync.sandbox.state import SandboxState


class Sandbox:
    """A running pair of simulators. Use as a context manager, or `start()` and `stop()`."""

    def __init__(
        self,
        state: SandboxState | None = None,
        *,
        host: str = "127.0.0.1",
        natecosmic_port: int = 0,
        monotree_port: int = 0,
    ) -> None:
        self.state = state or SandboxState()
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
            for app, port in (
                (natecosmic_app(self.state), natecosmic_port),
                (monotree_app(self.state), monotree_port),
            )
        ]
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    def _port(self, server: uvicorn.Server) -> int:
        return int(server.servers[0].sockets[0].getsockname()[1])

    @property
    def natecosmic_url(self) -> str:
        return f"http://{self.host}:{self._port(self._servers[0])}"

    @property
    def monotree_url(self) -> str:
        return f"http://{self.host}:{self._port(self._servers[1])}"

    def env(self) -> dict[str, str]:
        """The settings that point certsync at this sandbox."""
        return {
            "CERTSYNC_NATECOSMIC__BASE_URL": self.natecosmic_url,
            "CERTSYNC_NATECOSMIC__TOKEN": self.state.natecosmic_token,
            "CERTSYNC_MONOTREE__BASE_URL": self.monotree_url,
            "CERTSYNC_MONOTREE__TOKEN": self.state.monotree_token,
        }

    async def serve(self) -> None:
        await asyncio.gather(*(s.serve() for s in self._servers))

    def start(self, timeout: float = 10.0) -> Sandbox:
        def run() -> None:
            try:
                asyncio.run(self.serve())
            except BaseException as exc:
                self._failure = exc

        self._thread = threading.Thread(target=run, name="certsync-sandbox", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not all(s.started for s in self._servers):
            if self._failure is not None or not self._thread.is_alive():
                raise RuntimeError(f"the sandbox did not start: {self._failure!r}")
            if time.monotonic() > deadline:
                raise RuntimeError("the sandbox did not start in time")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        for s in self._servers:
            s.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
