"""`certsync run` as a real process against the sandbox: schedule, health, metrics, stop, lock."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import httpx
import pytest

from certsync.sandbox import Fault, SandboxState, World, generate
from tests.conftest import Cli, free_port, metric_sum, revoke_upstream, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def world(sandbox_state: SandboxState, cli: Cli) -> World:
    w = generate(sandbox_state, users=15, types=2, seed=5, today=date.today(), inactive_share=0.0)
    (cli.cwd / "mappings.toml").write_text(w.mapping_toml)
    return w


def test_daemon_converges_turns_ready_counts_requests_and_follows_upstream(
    daemons: Callable[..., tuple[subprocess.Popen[str], str]],
    sandbox_state: SandboxState,
    world: World,
) -> None:
    """Ready after a converged cycle; /metrics agrees with the sandbox; the next cycle sees a change."""
    proc, base = daemons()
    wait_for(lambda: httpx.get(f"{base}/readyz").status_code == 200, what="/readyz")
    assert sandbox_state.active_pairs()
    wait_for(lambda: httpx.get(f"{base}/healthz").json()["runs"] >= 2, what="a second cycle")

    pair = revoke_upstream(sandbox_state, world)
    wait_for(lambda: pair not in sandbox_state.active_pairs(), what="the upstream revocation")

    def counted_alike() -> bool:
        # The last cycle's counts reach /metrics when it ends; no sleep, a condition.
        text = httpx.get(f"{base}/metrics").text
        with sandbox_state.lock:
            seen = dict(sandbox_state.counts)
        natecosmic_seen = sum(n for k, n in seen.items() if k.startswith("natecosmic"))
        monotree_seen = sum(n for k, n in seen.items() if k.startswith("monotree"))
        return (
            metric_sum(text, "certsync_requests_total", api="natecosmic")
            in (
                natecosmic_seen,
                natecosmic_seen - 1,
            )
            and metric_sum(text, "certsync_requests_total", api="monotree") == monotree_seen
        )

    wait_for(counted_alike, what="/metrics to count what the sandbox saw")
    metrics = httpx.get(f"{base}/metrics").text
    assert metric_sum(metrics, "certsync_actions_total", kind="revoke", outcome="ok") == 1
    assert metric_sum(metrics, "certsync_runs_total", outcome="converged") >= 3
    assert metric_sum(metrics, "certsync_owned_holdings") == len(sandbox_state.active_pairs())
    assert metric_sum(metrics, "certsync_last_success_timestamp_seconds") > 0

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0


def test_sigterm_during_an_apply_finishes_the_request_and_exits_0(
    daemons: Callable[..., tuple[subprocess.Popen[str], str]],
    sandbox_state: SandboxState,
    world: World,
    cli: Cli,
) -> None:
    """The requests in flight complete and are journaled; nothing new starts; exit 0 in time."""
    sandbox_state.script(Fault("POST /certificates/assign", "delay-after", delay=2, times=100))
    proc, _ = daemons(CERTSYNC_SYNC__CHUNK_SIZE="2", CERTSYNC_CLIENT__CONCURRENCY="2")
    wait_for(lambda: sandbox_state.count("monotree", "POST") >= 2, what="two assigns in flight")
    in_flight = sandbox_state.count("monotree", "POST")
    proc.send_signal(signal.SIGTERM)
    started = time.monotonic()
    assert proc.wait(timeout=30) == 0
    assert time.monotonic() - started < 30
    assert sandbox_state.count("monotree", "POST") == in_flight == 2  # later chunks never started

    db = sqlite3.connect(cli.cwd / "certsync.db")
    outcomes = [row[0] for row in db.execute("SELECT outcome FROM journal ORDER BY seq")]
    open_runs = db.execute("SELECT COUNT(*) FROM run WHERE ended_at IS NULL").fetchone()[0]
    db.close()
    assert outcomes == ["ok", "ok"]
    assert open_runs == 0
    # What the journal says was issued is what Monotree holds; the rest follows next run.
    converge = cli("sync")
    assert converge.returncode == 0, converge.stderr[-2000:]


def test_a_second_daemon_stands_by_while_the_first_leads(
    daemons: Callable[..., tuple[subprocess.Popen[str], str]],
    sandbox_state: SandboxState,
    world: World,
    cli: Cli,
) -> None:
    """Two daemons on one store: the second stands by, ready, names the leader, and
    sends no write; only the leader shows certsync_leader 1."""
    # Long enough for the second daemon to start and look even on a loaded machine.
    sandbox_state.script(Fault("POST /certificates/assign", "delay-after", delay=10))
    admin = {"CERTSYNC_HTTP__ADMIN_TOKEN": "admin-token-for-the-standby-test-5d1e"}
    first, first_base = daemons(**admin)
    wait_for(lambda: bool(sandbox_state.active_pairs()), what="the first daemon's assign")
    second, second_base = daemons(**admin)
    wait_for(
        lambda: "standing by" in httpx.get(f"{second_base}/readyz").json()["reason"],
        what="the second daemon standing by",
    )
    ready = httpx.get(f"{second_base}/readyz")
    assert ready.status_code == 200
    assert f"the leader is certsync pid {first.pid}" in ready.json()["reason"]
    assert metric_sum(httpx.get(f"{first_base}/metrics").text, "certsync_leader") == 1
    assert metric_sum(httpx.get(f"{second_base}/metrics").text, "certsync_leader") == 0
    asked = httpx.post(
        f"{second_base}/runs",
        headers={"Authorization": "Bearer admin-token-for-the-standby-test-5d1e"},
        json={},
    )
    assert asked.status_code == 503  # queued on a standby, it would wait until it leads
    assert asked.json()["leader"].startswith(f"certsync pid {first.pid} on ")
    assert sandbox_state.count("monotree", "POST") == 1
    status = cli("status").stdout.splitlines()
    assert status[0].startswith(f"leader: certsync pid {first.pid} on ")
    assert ", epoch 1, lease renewed " in status[0]
    for proc in (second, first):
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    _, err = second.communicate()
    events = [json.loads(line)["event"] for line in err.splitlines() if line.startswith("{")]
    assert "leader.standing_by" in events
    assert "leader.elected" not in events and "sync.finished" not in events


def test_failing_cycles_back_off_and_show_in_health(
    daemons: Callable[..., tuple[subprocess.Popen[str], str]],
    sandbox_state: SandboxState,
    world: World,
) -> None:
    """A Natecosmic answering HTML fails each cycle: the daemon lives, is not ready, says why,
    and is ready again once Natecosmic is. (The retry timing is proven with a fake clock in
    test_daemon_driven.py.)"""
    sandbox_state.natecosmic_body = b"<html>maintenance</html>"
    proc, base = daemons()
    wait_for(
        lambda: httpx.get(f"{base}/healthz").json()["consecutive_failures"] >= 2,
        timeout=30,
        what="two failures",
    )
    health = httpx.get(f"{base}/healthz").json()
    assert "not the documented JSON" in health["last_error"]
    ready = httpx.get(f"{base}/readyz")
    assert ready.status_code == 503
    assert "not the documented JSON" in ready.json()["reason"]
    assert proc.poll() is None
    sandbox_state.natecosmic_body = None
    wait_for(lambda: httpx.get(f"{base}/readyz").status_code == 200, what="ready again")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0


def test_bad_cron_is_a_config_error(cli: Cli, world: World) -> None:
    """A malformed cron expression stops `certsync run` at start with exit 2 and one line."""
    result = cli("run", CERTSYNC_SCHEDULE__CRON="every tuesday", CERTSYNC_HTTP__PORT="0")
    assert result.returncode == 2
    assert "CERTSYNC_SCHEDULE__CRON" in result.stderr and "Traceback" not in result.stderr


def test_healthcheck_command_fails_when_nothing_listens(cli: Cli) -> None:
    """The image's HEALTHCHECK command exits 1 when the daemon is not answering."""
    result = cli(
        "healthcheck", CERTSYNC_HTTP__PORT=str(free_port()), CERTSYNC_HTTP__HOST="127.0.0.1"
    )
    assert result.returncode == 1 and "unhealthy" in result.stdout


def test_healthcheck_command_passes_against_a_running_daemon(
    daemons: Callable[..., tuple[subprocess.Popen[str], str]], cli: Cli, world: World
) -> None:
    """`certsync healthcheck` exits 0 against a live daemon on the configured port."""
    proc, base = daemons()
    port = base.rsplit(":", 1)[1]
    result = cli("healthcheck", CERTSYNC_HTTP__PORT=port, CERTSYNC_HTTP__HOST="0.0.0.0")
    assert result.returncode == 0 and "healthy" in result.stdout
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0


def test_dry_run_one_shot_works_with_the_image_defaults(
    cli: Cli, world: World, tmp_path: Path
) -> None:
    """`sync --dry-run` (what `docker run IMAGE sync --dry-run` runs) works and writes nothing."""
    result = cli("sync", "--dry-run")
    assert result.returncode == 0 and "dry run" in result.stdout


def test_each_run_records_its_own_requests(
    daemons: Callable[..., tuple[subprocess.Popen[str], str]],
    sandbox_state: SandboxState,
    world: World,
    cli: Cli,
) -> None:
    """The daemon's clients live across cycles, but each run in the journal counts only its own requests."""
    proc, base = daemons()
    wait_for(lambda: httpx.get(f"{base}/healthz").json()["runs"] >= 3, what="three cycles")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    runs = json.loads(cli("status", "--format", "json").stdout)
    quiet = [r for r in runs if r["kind"] == "incremental" and r["outcome"] == "converged"]
    # The pull unchanged since the first cycle's: Natecosmic answers its ETag with a 304.
    one_each = {"monotree GET 200": 1, "natecosmic GET 304": 1}
    assert quiet and all(r["requests"] == one_each for r in quiet)
