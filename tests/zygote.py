"""One-shot `certsync` commands for the tests, each a process forked from a warm one.

A `certsync` process spends about 0.9 s of CPU importing its libraries before
it does anything (SQLAlchemy, SQLModel, pydantic, httpx), and the suite runs
some three hundred one-shot commands on two cores. So each test worker starts
one *zygote*: a single-threaded Python that imports `certsync.cli` and waits.
For each command it forks a child, which takes the test's environment, folder
and output files, sets `sys.argv` as the `certsync` script would, and calls
`certsync.cli.main`: a real process running the command line's own code, with
its own exit code, files and sockets, minus the import. What a fresh
interpreter would read from its environment at start (PYTHONHASHSEED, the
locale) is the zygote's: certsync reads nothing there.

What is about the process itself (signals, kills, failover, the daemon, the
terminal) still starts the installed `certsync` script, and so does every
command when `TESTS_NO_FORK=1`.

The protocol, on a Unix SOCK_SEQPACKET socket, one connection per command: the
test sends a JSON request (argv, env, cwd) with three file descriptors (stdin,
stdout, stderr); the zygote answers `pid <n>`, then `exit <code>` once it has
reaped the child (a negative code for a signal, as subprocess reports it).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

CERTSYNC = str(Path(sys.executable).with_name("certsync"))
# What the commands import, imported once (`alembic` for `db upgrade` and any store older
# than head). Importing starts no thread, so forking stays safe.
WARM = ("certsync.cli.main", "certsync.cli.explain", "certsync.cli.suggest", "alembic.command")


def _serve(path: str) -> None:
    """The zygote: forks a child per request and reports how each one ended."""
    for module in WARM:
        importlib.import_module(module)

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(path)
    listener.listen(64)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    children: dict[int, socket.socket] = {}
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ, "accept")
    sel.register(wake_r, selectors.EVENT_READ, "child")
    sel.register(sys.stdin, selectors.EVENT_READ, "parent")
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while True:
        for key, _ in sel.select():
            if key.data == "parent":  # the test worker closed our stdin, or died
                for pid in children:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                return
            if key.data == "child":
                os.read(wake_r, 4096)
            else:
                conn, _ = listener.accept()
                try:
                    message, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
                    request = json.loads(message)
                except (OSError, ValueError):
                    conn.close()  # a test that went away, or a garbled request: not ours to die of
                    continue
                pid = os.fork()
                if pid == 0:
                    sel.close()
                    listener.close()
                    for other in children.values():
                        other.close()
                    conn.close()
                    signal.set_wakeup_fd(-1)
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    os.close(wake_r)
                    os.close(wake_w)
                    _become(request, fds)  # never returns
                for fd in fds:
                    os.close(fd)
                children[pid] = conn
                with contextlib.suppress(OSError):
                    conn.send(f"pid {pid}".encode())
            while children:
                done, status = os.waitpid(-1, os.WNOHANG)
                if done == 0:
                    break
                waiting = children.pop(done, None)
                if waiting is not None:
                    with contextlib.suppress(OSError):
                        waiting.send(f"exit {os.waitstatus_to_exitcode(status)}".encode())
                    waiting.close()


def _become(request: Mapping[str, object], fds: Sequence[int]) -> None:
    """In the child: the command's files, folder and environment, then the command."""
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(str(request["cwd"]))
    env = request["env"]
    assert isinstance(env, dict)
    os.environ.clear()
    os.environ.update(env)
    argv = request["argv"]
    assert isinstance(argv, list)
    sys.argv = [CERTSYNC, *argv]
    sys.path[0] = os.path.dirname(CERTSYNC)  # as for the script, not the zygote's folder
    from certsync.cli import main

    # Out through the interpreter's own exit: atexit, buffers and threads as in any run.
    raise SystemExit(main())


class Zygote:
    """The test worker's side: runs one command at a time per call, from any thread."""

    def __init__(self) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="certsync-zygote-")
        self._path = os.path.join(self._folder.name, "s")
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys; from tests.zygote import _serve; _serve(sys.argv[1])",
                self._path,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).parent.parent,
        )
        assert self._proc.stdout is not None
        if self._proc.stdout.readline().strip() != "ready":
            self._proc.kill()
            self._proc.wait()
            self._folder.cleanup()
            raise RuntimeError("the test zygote did not start")

    def run(
        self, argv: Sequence[str], *, env: Mapping[str, str], cwd: Path, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        """`certsync *argv` as `subprocess.run(..., capture_output=True, text=True)` would."""
        with (
            tempfile.TemporaryFile() as out,
            tempfile.TemporaryFile() as err,
            open(os.devnull, "rb") as stdin,
            socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as conn,
        ):
            conn.connect(self._path)
            request = json.dumps({"argv": list(argv), "env": dict(env), "cwd": str(cwd)})
            socket.send_fds(conn, [request.encode()], [stdin.fileno(), out.fileno(), err.fileno()])
            pid = _number(conn, "pid")
            conn.settimeout(timeout)
            try:
                code = _number(conn, "exit")
            except BaseException as exc:
                # A timeout, pytest-timeout's signal, Ctrl-C: as subprocess.run does, the
                # child is killed, never left holding its store and ports for later tests.
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                if isinstance(exc, TimeoutError):
                    conn.settimeout(10)
                    with contextlib.suppress(OSError):
                        conn.recv(64)
                    raise subprocess.TimeoutExpired([CERTSYNC, *argv], timeout) from None
                raise
            return subprocess.CompletedProcess([CERTSYNC, *argv], code, _text(out), _text(err))

    def close(self) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._folder.cleanup()


def _number(conn: socket.socket, word: str) -> int:
    said = conn.recv(64).decode().split()
    if len(said) != 2 or said[0] != word:
        raise RuntimeError(f"the test zygote said {said!r}, not {word!r}: did it die?")
    return int(said[1])


def _text(file: IO[bytes]) -> str:
    """What `subprocess.run(text=True)` makes of the bytes: UTF-8, strictly, and universal
    newlines."""
    file.seek(0)
    return file.read().decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
