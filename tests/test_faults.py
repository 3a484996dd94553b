"""The fault matrix: each fault against the sandbox over real HTTP, and what certsync does about it.

Every test ends in one of two places: converged, or a clear failure with
nothing lost (journal complete, ownership kept, no plan made from a partial read).
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import date, timedelta
from typing import Any

import pytest

from certsync.sandbox import Fault, FaultConfig, SandboxState, World, generate
from tests.conftest import Cli
from tests.test_e2e import desired_pairs, sync

pytestmark = pytest.mark.e2e
TODAY = date.today()
# A short read timeout and two tries: a held-back answer fails the request quickly.
IMPATIENT = {
    "CERTSYNC_CLIENT__READ_TIMEOUT": "0.3",
    "CERTSYNC_CLIENT__MAX_ATTEMPTS": "2",
    "CERTSYNC_CLIENT__BACKOFF_BASE": "0.01",
}
FAST = {"CERTSYNC_CLIENT__MAX_ATTEMPTS": "4", "CERTSYNC_CLIENT__BACKOFF_BASE": "0.01"}


@pytest.fixture
def world(sandbox_state: SandboxState, cli: Cli) -> World:
    w = generate(
        sandbox_state, users=70, types=2, seed=21, today=TODAY, per_user=1, inactive_share=0.0
    )
    (cli.cwd / "mappings.toml").write_text(w.mapping_toml)
    return w


def journal(cli: Cli) -> list[tuple[str, str | None]]:
    db = sqlite3.connect(cli.cwd / "certsync.db")
    try:
        return [
            (a, o)
            for a, o in db.execute("SELECT action, outcome FROM journal ORDER BY run_id, seq")
        ]
    finally:
        db.close()


def owned(cli: Cli) -> set[tuple[int, int]]:
    db = sqlite3.connect(cli.cwd / "certsync.db")
    try:
        return {(c, u) for c, u in db.execute("SELECT certificate_id, user_id FROM ownership")}
    finally:
        db.close()


def converged(state: SandboxState, world: World) -> bool:
    return state.active_pairs() == desired_pairs(state, world)


def test_429_storm_with_retry_after(cli: Cli, sandbox_state: SandboxState, world: World) -> None:
    """Three 429s in a row with Retry-After on the holder reads: waited out, converged."""
    sandbox_state.script(
        Fault(
            f"GET /certificates/{world.template_ids[0]}/users$",
            "status",
            status=429,
            times=3,
            retry_after=1,
        )
    )
    started = time.monotonic()
    doc = sync(cli.using(FAST))
    assert doc["outcome"] == "converged" and converged(sandbox_state, world)
    assert time.monotonic() - started >= 3  # each Retry-After: 1 was honoured
    assert doc["requests"].get("monotree GET 429") == 3


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_error_bursts(
    cli: Cli, sandbox_state: SandboxState, world: World, status: int
) -> None:
    """A burst of 5xx on the pull and on the assign: retried, converged."""
    sandbox_state.script(Fault("GET /v1/certifications", "status", status=status, times=2))
    sandbox_state.script(Fault("POST /certificates/assign", "status", status=status, times=2))
    doc = sync(cli.using(FAST))
    assert doc["outcome"] == "converged" and converged(sandbox_state, world)


def test_dropped_connections(cli: Cli, sandbox_state: SandboxState, world: World) -> None:
    """A fifth of connections dropped mid-answer (seeded): retried, converged."""
    sandbox_state.set_faults(FaultConfig(drop_rate=0.2, seed=4))
    doc = sync(cli, CERTSYNC_CLIENT__MAX_ATTEMPTS="8", CERTSYNC_CLIENT__BACKOFF_BASE="0.01")
    sandbox_state.set_faults(FaultConfig())
    assert doc["outcome"] == "converged" and converged(sandbox_state, world)


def test_read_timeout_in_the_middle_of_a_paginated_read(
    cli: Cli, sandbox_state: SandboxState, world: World
) -> None:
    """Page 2 of a holder list never answers in time: no plan, no write, exit 1, a clear error."""
    for uid in world.monotree_ids[:60]:
        sandbox_state.issue(world.template_ids[0], uid, TODAY - timedelta(days=5))
    sandbox_state.script(Fault(r"GET /certificates/\d+/users", "delay", delay=0.0, times=1))
    sandbox_state.script(Fault(r"GET /certificates/\d+/users.*", "delay", delay=3.0, times=99))
    result = cli.using(IMPATIENT)("sync", "--format", "json")
    assert result.returncode == 1, result.stderr[-2000:]
    doc = json.loads(result.stdout)
    assert "gave up after 2 attempt(s)" in doc["error"] and "timeout" in doc["error"]
    assert doc["write_requests"] == [] and sandbox_state.count("monotree", "POST") == 0
    assert journal(cli) == []


def test_read_timeout_on_a_write_keeps_ownership_and_the_next_cycle_finds_out(
    cli: Cli, sandbox_state: SandboxState, world: World
) -> None:
    """The assign lands but its answer times out: outcome unknown, ownership kept; the next run reads and agrees."""
    sandbox_state.script(Fault("POST /certificates/assign", "delay-after", delay=2.0, times=2))
    result = cli.using(IMPATIENT)("sync", "--format", "json")
    assert result.returncode == 1
    doc = json.loads(result.stdout)
    assert doc["failures"][0]["outcome"] == "unknown"
    assert journal(cli) == [("assign", "unknown")]
    assert owned(cli) == set(desired_pairs(sandbox_state, world))
    time.sleep(2.0)  # let the sandbox finish the held-back answers

    after = sync(cli)
    assert after["templates_read"] == world.template_ids  # the dirty templates were read again
    assert after["write_requests"] == [] and converged(sandbox_state, world)
    assert owned(cli) == sandbox_state.api_issued_active()


def test_401_in_the_middle_of_a_run(cli: Cli, sandbox_state: SandboxState, world: World) -> None:
    """The token is revoked between reads and the first write: exit 2, that write journaled as failed, nothing owned."""
    sandbox_state.script(Fault("POST /certificates/assign", "status", status=401))
    result = cli.using(FAST)("sync", "--format", "json")
    assert result.returncode == 2
    doc = json.loads(result.stdout)
    assert "401 Unauthorized" in doc["error"] and doc["outcome"] == "error"
    assert journal(cli) == [("assign", "failed")]
    assert owned(cli) == set()
    assert sync(cli)["outcome"] == "converged"


def test_403_missing_scope(cli: Cli, sandbox_state: SandboxState, world: World) -> None:
    """A token without write:certificates: exit 2, the error names the scope, nothing is owned."""
    sandbox_state.tokens["monotree"][sandbox_state.monotree_token] = frozenset(
        {"read:certificates", "read:users"}
    )
    result = cli("sync")
    assert result.returncode == 2
    assert "lacks the scope 'write:certificates'" in result.stdout + result.stderr
    assert owned(cli) == set()


def test_a_template_deleted_between_plan_and_apply(
    cli: Cli, sandbox_state: SandboxState, world: World
) -> None:
    """The assign body naming a just-deleted template is split: the other template's users still get theirs."""
    sandbox_state.script(Fault("POST /certificates/assign", "delay", delay=1.0, times=1))
    gone = world.template_ids[0]

    def delete_when_the_assign_arrives() -> None:
        deadline = time.monotonic() + 20
        while sandbox_state.count("monotree", "POST") == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        with sandbox_state.lock:
            sandbox_state.templates[gone].deleted = True

    deleter = threading.Thread(target=delete_when_the_assign_arrives)
    deleter.start()
    doc = sync(cli.using(FAST), expect=1)
    deleter.join()
    assert {c for f in doc["failures"] for c in f["certificate_ids"]} == {gone}
    kept = {p for p in desired_pairs(sandbox_state, world) if p[0] != gone}
    assert set(sandbox_state.active_pairs()) == kept
    assert owned(cli) == kept

    again = sync(cli, expect=1)
    assert again["missing_templates"] == [gone] and again["write_requests"] == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html><body>Service Unavailable</body></html>", "not the documented JSON"),
        (b'{"data": [{"id": "x", "user_', "not the documented JSON"),
    ],
)
def test_natecosmic_answering_html_or_truncated_json(
    cli: Cli, sandbox_state: SandboxState, world: World, body: bytes, message: str
) -> None:
    """A broken pull fails the run (exit 1), sends no write and revokes nothing."""
    sync(cli)
    before = sandbox_state.active_pairs()
    sandbox_state.natecosmic_body = body
    result = cli("sync", "--format", "json")
    assert result.returncode == 1
    assert message in json.loads(result.stdout)["error"]
    assert sandbox_state.active_pairs() == before


def test_the_same_record_twice(cli: Cli, sandbox_state: SandboxState, world: World) -> None:
    """A record listed twice is rejected once as a duplicate; the run converges."""
    with sandbox_state.lock:
        sandbox_state.records.append(dict(sandbox_state.records[0]))
    doc = sync(cli)
    assert [r["reason"] for r in doc["plan"]["rejected"]] == ["duplicate record id in the pull"]
    assert converged(sandbox_state, world)


def test_a_mapped_monotree_user_deactivated(
    cli: Cli, sandbox_state: SandboxState, world: World
) -> None:
    """A deactivated user's assign is refused and isolated: a clear failure, everyone else converged."""
    victim = world.monotree_ids[3]
    sandbox_state.update_user(victim, active=False)
    doc = sync(cli, expect=1)
    failed_users = {u for f in doc["failures"] for u in f["user_ids"]}
    assert failed_users == {victim}
    assert "selected user id is invalid" in doc["failures"][0]["error"]
    want = {p: d for p, d in desired_pairs(sandbox_state, world).items() if p[1] != victim}
    assert sandbox_state.active_pairs() == want
    assert victim not in {u for _, u in owned(cli)}


def test_a_mapped_user_missing_from_the_user_list_is_reported(
    cli: Cli, sandbox_state: SandboxState, world: World
) -> None:
    """With email mappings the user list is read; a mapped id not in it is reported missing, not sent."""
    text = (cli.cwd / "mappings.toml").read_text()
    text = text.replace(
        f"monotree = {world.monotree_ids[0]}\n", 'monotree_email = "user0@example.com"\n', 1
    )
    (cli.cwd / "mappings.toml").write_text(text)
    victim = world.monotree_ids[5]
    sandbox_state.update_user(victim, registered=False)
    doc: dict[str, Any] = sync(cli)
    assert [m["user_id"] for m in doc["plan"]["missing_users"]] == [victim]
    assert doc["failures"] == []


def test_a_50_mb_pull_past_the_size_limit_is_refused_with_bounded_memory(
    cli: Cli, sandbox_state: SandboxState, world: World
) -> None:
    """A 50 MB answer over a 10 MB limit: a clear error naming the setting; the body is never held whole."""
    record = json.dumps(sandbox_state.records[0]).encode()
    sandbox_state.natecosmic_body = (
        b'{"data": [' + b",".join([record] * (50_000_000 // len(record))) + b"]}"
    )
    assert len(sandbox_state.natecosmic_body) > 50_000_000
    wrapper = (
        "import sys; from certsync.cli.main import main; rc = main(['sync', '--format', 'json']); "
        "hwm = next(line for line in open('/proc/self/status') if line.startswith('VmHWM')).split()[1]; "
        "print('peak_kib', hwm, file=sys.stderr); sys.exit(rc)"
    )
    result = subprocess.run(
        [sys.executable, "-c", wrapper],
        env={**cli.env, "CERTSYNC_CLIENT__MAX_RESPONSE_BYTES": "10000000"},
        cwd=cli.cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 1
    assert (
        "exceeds the limit of 10000000 bytes (CERTSYNC_CLIENT__MAX_RESPONSE_BYTES)"
        in json.loads(result.stdout)["error"]
    )
    peak_mib = int(result.stderr.rsplit("peak_kib", 1)[1].split()[0]) / 1024
    print(f"\n50 MB pull over a 10 MB limit: refused; peak RSS {peak_mib:.0f} MiB")
    assert peak_mib < 120  # the whole body parsed would take over 300 MiB
