"""Quiet cycles in the daemon: the CPU a long-running `certsync run` spends on a cycle
with nothing to do. A one-shot `certsync sync` also opens the store, builds its
clients and parser and compiles its queries each time; the daemon does that once.

Cycles are asked for through the admin API (`POST /runs`), one at a time, and the
daemon's process CPU (all its threads, from /proc) is read before the request and
after the run is done; the log line of each cycle must say it decided nothing.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from certsync.sandbox import SandboxState

ROUNDS = 3
_TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class DaemonQuiet:
    """Median CPU seconds of a quiet cycle in the daemon: answered 304, and given the
    same body again without validators."""

    cpu_304: float
    cpu_same_body: float


def _process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Daemon:
    def __init__(self, env: dict[str, str], folder: Path) -> None:
        self.token = secrets.token_hex(16)
        self.base = f"http://127.0.0.1:{_free_port()}"
        self.log = folder / "daemon.log"
        self._log = self.log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "certsync", "run"],
            env={
                **env,
                "CERTSYNC_SCHEDULE__INTERVAL": "86400",  # only the cycles asked for
                "CERTSYNC_HTTP__HOST": "127.0.0.1",
                "CERTSYNC_HTTP__PORT": self.base.rsplit(":", 1)[1],
                "CERTSYNC_HTTP__ADMIN_TOKEN": self.token,
                "CERTSYNC_LOG_LEVEL": "info",
                "CERTSYNC_LOG_FORMAT": "json",
            },
            cwd=folder,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )
        self.client = httpx.Client(
            base_url=self.base, headers={"Authorization": f"Bearer {self.token}"}, timeout=10
        )

    def wait_first_cycle(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"certsync run ended:\n{self.log.read_text()[-3000:]}")
            try:
                if self.client.get("/healthz").json().get("runs", 0) >= 1:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise SystemExit(f"certsync run: no first cycle in {timeout:.0f} s")

    def cycle(self) -> tuple[float, str | None]:
        """One cycle asked for and waited for: the daemon's CPU seconds meanwhile, and
        the run it was unchanged since (None: it decided)."""
        before = _process_cpu(self.proc.pid)
        ticket = self.client.post("/runs", json={}).json()
        while True:
            time.sleep(0.1)  # each look costs the daemon a little CPU too: not too often
            run = self.client.get(f"/runs/{ticket['id']}").json()
            if run["state"] in ("done", "failed"):
                break
        cpu = _process_cpu(self.proc.pid) - before
        if run["state"] != "done" or run["outcome"] != "converged":
            raise SystemExit(f"certsync run: the cycle asked for ended {run}")
        return cpu, self._unchanged_since(run["run_id"])

    def _unchanged_since(self, run_id: str) -> str | None:
        for line in self.log.read_text().splitlines():
            if line.startswith("{"):
                event = json.loads(line)
                if event.get("event") == "sync.finished" and event.get("run_id") == run_id:
                    return event.get("unchanged_since")  # type: ignore[no-any-return]
        raise SystemExit(f"certsync run: no log line for run {run_id}")

    def quiet_cpu(self) -> float:
        """The median CPU of ROUNDS quiet cycles, after one that decides."""
        self.cycle()  # the first after a change decides, and hands its inputs on
        spent = []
        for _ in range(ROUNDS):
            cpu, since = self.cycle()
            if since is None:
                raise SystemExit("certsync run: a cycle on unchanged inputs decided again")
            spent.append(cpu)
        return statistics.median(spent)

    def stop(self) -> None:
        self.client.close()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self._log.close()


def quiet_in_daemon(state: SandboxState, env: dict[str, str], folder: Path) -> DaemonQuiet:
    """The daemon's first cycle is full; then quiet cycles answered 304, then quiet
    cycles given the same body whole (the sandbox's validators off)."""
    daemon = _Daemon(env, folder)
    try:
        daemon.wait_first_cycle(timeout=600)
        state.etags = state.last_modified = True
        with_304 = daemon.quiet_cpu()
        state.etags = state.last_modified = False
        same_body = daemon.quiet_cpu()
    finally:
        state.etags = state.last_modified = True
        daemon.stop()
    return DaemonQuiet(with_304, same_body)
