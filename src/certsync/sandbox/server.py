"""Both simulators served by uvicorn on 127.0.0.1, from a background thread."""

from __future__ import annotations

from types import TracebackType

from certsync.sandbox.apps import monotree_app, natecosmic_app
from certsync.sandbox.state import SandboxState
from certsync.service.serve import ServerThread


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
        self._server = ServerThread(
            [
                (natecosmic_app(self.state), natecosmic_port),
                (monotree_app(self.state), monotree_port),
            ],
            host=host,
        )

    @property
    def natecosmic_url(self) -> str:
        return self._server.url(0)

    @property
    def monotree_url(self) -> str:
        return self._server.url(1)

    def env(self) -> dict[str, str]:
        """The settings that point certsync at this sandbox."""
        return {
            "CERTSYNC_NATECOSMIC__BASE_URL": self.natecosmic_url,
            "CERTSYNC_NATECOSMIC__TOKEN": self.state.natecosmic_token,
            "CERTSYNC_MONOTREE__BASE_URL": self.monotree_url,
            "CERTSYNC_MONOTREE__TOKEN": self.state.monotree_token,
        }

    def start(self) -> Sandbox:
        self._server.start()
        return self

    def alive(self) -> bool:
        return self._server.alive()

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
