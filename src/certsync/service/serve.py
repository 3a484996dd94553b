"""ASGI apps served by uvicorn from a background thread: the sandbox, the health port."""

from __future__ import annotations

import asyncio
import socket
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
                    # Named, not "auto": a missing parser is an error at start, never a
                    # quiet fall back to the pure-Python one at twice the cost a request.
                    http="httptools",
                    log_level="critical",
                    access_log=False,
                    lifespan="off",
                    timeout_graceful_shutdown=1,
                )
            )
            for app, port in apps
        ]
        self._ports = [port for _, port in apps]
        self._sockets: list[socket.socket] = []
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    def _bind(self) -> None:
        """Listen here, in the caller's thread: a taken port is one clear error, not a
        server thread dying with a traceback."""
        for port in self._ports:
            family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY on the accepted connections
            # only then; without it every answer on a kept-alive connection waits 40 ms
            # for the client's delayed ACK (headers and body are two writes).
            sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((self.host, port))
                sock.listen(128)
            except OSError as exc:
                sock.close()
                for bound in self._sockets:
                    bound.close()
                self._sockets = []
                raise RuntimeError(
                    f"cannot listen on {self.host}:{port}: {exc.strerror or exc}"
                ) from None
            self._sockets.append(sock)

    def port(self, index: int = 0) -> int:
        return int(self._sockets[index].getsockname()[1])

    def url(self, index: int = 0) -> str:
        return f"http://{self.host}:{self.port(index)}"

    def start(self, timeout: float = 10.0) -> None:
        self._bind()

        async def serve() -> None:
            await asyncio.gather(
                *(
                    s.serve(sockets=[sock])
                    for s, sock in zip(self._servers, self._sockets, strict=True)
                )
            )

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
                raise RuntimeError(f"could not serve on {self.host}: {self._failure!r}")
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
        for sock in self._sockets:
            sock.close()
