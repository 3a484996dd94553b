"""Soak: the daemon runs many cycles against a faulty sandbox; memory and descriptors stay flat.

300 cycles take about twenty seconds, so `make test` runs the whole soak.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from datetime import date
from pathlib import Path

import httpx
import pytest

from certsync.sandbox import FaultConfig, SandboxState, generate
from tests.conftest import Cli, free_port, wait_for

pytestmark = pytest.mark.e2e
CYCLES = int(os.environ.get("CERTSYNC_SOAK_CYCLES", "300"))


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_soak(cli: Cli, sandbox_state: SandboxState) -> None:
    """CYCLES cycles with 10% of answers failing and 3% dropped: every cycle recorded, no leak."""
    world = generate(
        sandbox_state, users=40, types=3, seed=9, today=date.today(), inactive_share=0.0
    )
    (cli.cwd / "mappings.toml").write_text(world.mapping_toml)
    sandbox_state.set_faults(FaultConfig(error_rate=0.1, drop_rate=0.03, retry_after=0, seed=17))
    port = free_port()
    proc = cli.popen(
        "run",
        CERTSYNC_SCHEDULE__INTERVAL="0.05",
        CERTSYNC_SCHEDULE__MAX_BACKOFF="0.2",
        CERTSYNC_SCHEDULE__FULL_EVERY="2",
        CERTSYNC_HTTP__HOST="127.0.0.1",
        CERTSYNC_HTTP__PORT=str(port),
        CERTSYNC_CLIENT__MAX_ATTEMPTS="4",
        CERTSYNC_LOG_LEVEL="warning",
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _runs(base) >= 5, timeout=60, what="warm-up cycles")
        first = (rss_kib(proc.pid), fds(proc.pid))
        # Descriptors are compared from a third of the way in: by then the connection
        # pool has grown to what the threads need at once (each SQLite connection holds
        # the file, its WAL and its shared memory), so any later growth is a leak.
        settled: int | None = None
        flip = 0
        deadline = time.monotonic() + max(120, CYCLES)
        while _runs(base) < CYCLES:
            assert proc.poll() is None, "the daemon died"
            assert time.monotonic() < deadline, "cycles stopped coming"
            # Keep upstream moving so writes happen too.
            with sandbox_state.lock:
                r = sandbox_state.records[flip % len(sandbox_state.records)]
                r["lifecycle_status"] = "revoked" if r["lifecycle_status"] == "active" else "active"
            flip += 1
            if settled is None and _runs(base) >= CYCLES // 3:
                settled = fds(proc.pid)
            time.sleep(0.2)
        last = (rss_kib(proc.pid), fds(proc.pid))
        health = httpx.get(f"{base}/healthz").json()
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    assert code == 0

    db = sqlite3.connect(cli.cwd / "certsync.db")
    runs, open_runs, open_writes = db.execute(
        "SELECT COUNT(*), SUM(ended_at IS NULL), (SELECT COUNT(*) FROM journal WHERE outcome IS NULL) FROM run"
    ).fetchone()
    outcomes = dict(db.execute("SELECT outcome, COUNT(*) FROM run GROUP BY outcome").fetchall())
    db.close()
    print(
        f"\nsoak: {runs} cycles ({outcomes}); RSS {first[0]} KiB at cycle 5 -> {last[0]} KiB at cycle "
        f"{health['runs']}; open descriptors {first[1]} -> {settled} at a third -> {last[1]}; "
        f"{sum(n for k, n in sandbox_state.statuses.items() if not k.endswith(('200', '204')))} faulty answers"
    )
    assert runs >= CYCLES and open_runs == 0 and open_writes == 0
    # One more pooled SQLite connection (file, WAL, shared memory) is three descriptors
    # and may still open late in a short soak; a leak grows with every cycle instead.
    assert settled is not None and last[1] <= settled + 3
    assert last[0] <= first[0] * 1.25 + 4096


def _runs(base: str) -> int:
    try:
        return int(httpx.get(f"{base}/healthz", timeout=2).json()["runs"])
    except httpx.HTTPError:
        return 0
