"""A real PostgreSQL 16 for the tests, from the pgserver wheel (a dev dependency).

Nothing needs to be installed on the machine: the first test that asks for it
starts a server in a temporary folder, listening on a unix socket only (so
nothing leaves the machine), and the session stops it at the end, on SIGTERM
too. Each xdist worker has a server of its own; each test a database of its own.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import tempfile
from pathlib import Path
from types import FrameType
from typing import Any

# initdb needs a locale that exists; platformdirs warns when this is missing.
os.environ["LC_ALL"] = "C.UTF-8"
os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.mkdtemp(prefix="certsync-run-"))

# After the environment: pgserver reads it at import.
import psycopg
from pgserver._commands import POSTGRES_BIN_PATH
from pgserver.postgres_server import get_server


class Postgres:
    """One server: fresh databases, and stop/start for the outage scenarios."""

    def __init__(self, root: Path) -> None:
        self.data = root / "data"
        self._server = get_server(self.data, cleanup_mode="stop")
        self._socket_dir = self._server.get_postmaster_info().socket_dir
        self._names = itertools.count(1)
        self._running = True
        self._previous: Any = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, self._on_sigterm)

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        self.close()
        previous = self._previous
        if callable(previous):
            previous(signum, frame)
        else:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@/{database}?host={self._socket_dir}"

    def admin(self, sql: str) -> None:
        with psycopg.connect(self._server.get_uri(), autocommit=True) as conn:
            conn.execute(sql.encode())  # statements this file makes, never user input

    def new_database(self) -> str:
        """A database of its own for one test; its URL."""
        name = f"t{os.getpid()}_{next(self._names)}"
        self.admin(f"CREATE DATABASE {name}")
        return self.url(name)

    def _pg_ctl(self, *args: str) -> None:
        # As the user pgserver runs the server as (PostgreSQL will not run as root).
        subprocess.run(
            [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(self.data), "-w", *args],
            user=self._server.system_user,
            check=True,
            capture_output=True,
            timeout=30,
        )

    def stop(self) -> None:
        """Stop the server (fast: connections are cut), as an outage would."""
        self._pg_ctl("-m", "fast", "stop")
        self._running = False

    def start(self) -> None:
        log = str(self.data / "log")
        self._pg_ctl("-o", '-h ""', "-o", f"-k {self._socket_dir}", "-l", log, "start")
        self._running = True

    def close(self) -> None:
        signal.signal(signal.SIGTERM, self._previous)
        if self._running:
            self._running = False
            # Stopped here, not by pgserver: after an outage test the server runs under
            # a postmaster pgserver did not start, and would be left running.
            with contextlib.suppress(subprocess.SubprocessError):
                self.stop()
        self._server.cleanup()  # pgserver's own bookkeeping; the server is down by now
