"""The suite's PostgreSQL is always stopped: at the end of a session, and on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

SERVE = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from tests.postgres import Postgres
    server = Postgres(Path(sys.argv[1]))
    print(server.new_database(), flush=True)
    time.sleep(120)
    """
)


def servers_of(folder: Path) -> list[int]:
    """Pids of postgres processes serving a data folder under `folder`."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # not a process, or gone meanwhile
            continue
        if argv[0].endswith(b"/postgres") and str(folder).encode() in b" ".join(argv):
            found.append(int(entry.name))
    return found


def test_sigterm_stops_the_test_postgresql(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parent.parent,
    )
    assert holder.stdout is not None and holder.stdout.readline().startswith("postgresql")
    assert servers_of(tmp_path), "the server did not start"
    holder.send_signal(signal.SIGTERM)
    assert holder.wait(timeout=30) == -signal.SIGTERM  # it still dies of the signal
    assert servers_of(tmp_path) == []
