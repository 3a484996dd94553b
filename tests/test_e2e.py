"""End to end: the installed `certsync` command against the sandbox over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from certsync.sandbox import Fault, FaultConfig, SandboxState, World, generate
from tests.conftest import CERTSYNC, Cli, clean_env, free_port

pytestmark = pytest.mark.e2e
TODAY = date.today()


@pytest.fixture
def world(sandbox_state: SandboxState, cli: Cli) -> World:
    w = generate(
        sandbox_state,
        users=30,
        types=3,
        seed=11,
        today=TODAY,
        inactive_share=0.1,
        unmapped_type=True,
        unmapped_user_every=10,
    )
    (cli.cwd / "mappings.toml").write_text(w.mapping_toml)
    return w


def sync(cli: Cli, *args: str, expect: int = 0, **env: str) -> dict[str, Any]:
    result = cli.using(env)("sync", "--format", "json", *args)
    assert result.returncode == expect, result.stderr[-3000:]
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def desired_pairs(state: SandboxState, world: World) -> dict[tuple[int, int], date]:
    """What Monotree must hold: computed here from the raw records, independently of certsync."""
    by_type = {t: world.template_ids[i] for i, t in enumerate(world.type_ids)}
    mapped = {
        u: world.monotree_ids[i]
        for i, u in enumerate(world.user_ids)
        if u not in world.unmapped_users
    }
    want: dict[tuple[int, int], date] = {}
    for r in state.records:
        if r["lifecycle_status"] != "active" or r["validity_status"] != "valid":
            continue
        if r["expires_on"] and date.fromisoformat(r["expires_on"]) < TODAY:
            continue
        cert, user = by_type.get(r["certification_type_id"]), mapped.get(r["user_id"])
        if cert is None or user is None:
            continue
        issued = date.fromisoformat(r["issued_on"])
        want[(cert, user)] = max(issued, want.get((cert, user), issued))
    return want


def test_fresh_sync_then_idempotent_then_incremental_costs_one_request_per_api(
    cli: Cli, sandbox_state: SandboxState, world: World
) -> None:
    """Converge; a second sync writes nothing; a quiet incremental cycle is one request per API."""
    first = sync(cli)
    assert first["kind"] == "full" and first["outcome"] == "converged"
    assert sandbox_state.active_pairs() == desired_pairs(sandbox_state, world)
    assert first["counts"]["unmapped"] > 0
    assert first["requests_by_api"]["natecosmic"] == 1
    assert sandbox_state.count("monotree", "POST") == 1  # every assign in one body

    sandbox_state.reset_counts()
    second = sync(cli)
    assert second["kind"] == "incremental" and second["write_requests"] == []
    # One request per API: the pull, and the template list that proves the Monotree token.
    assert sandbox_state.count() == 2
    assert second["requests_by_api"] == {"monotree": 1, "natecosmic": 1}

    sandbox_state.reset_counts()
    full = sync(cli, "--full")
    assert full["write_requests"] == [] and sandbox_state.count("monotree", "POST") == 0
    # The template list, then each template's single page of holders.
    assert sandbox_state.count("monotree", "GET") == 1 + len(world.template_ids)


def test_revoke_and_renewal_after_an_upstream_change(
    cli: Cli, sandbox_state: SandboxState, world: World
) -> None:
    """An upstream revocation is revoked; a newer issue is renewed (reset, then assign)."""
    sync(cli)
    desired = desired_pairs(sandbox_state, world)
    with sandbox_state.lock:
        records = sandbox_state.records
        gone = next(
            i
            for i, r in enumerate(records)
            if r["user_id"] not in world.unmapped_users
            and r["lifecycle_status"] == "active"
            and r["validity_status"] == "valid"
            and r["certification_type_id"] in world.type_ids
        )
        records[gone] = {**records[gone], "lifecycle_status": "revoked"}
        renew = next(
            i
            for i, r in enumerate(records)
            if i != gone
            and r["user_id"] not in world.unmapped_users
            and r["lifecycle_status"] == "active"
            and r["validity_status"] == "valid"
            and r["certification_type_id"] in world.type_ids
            and r["user_id"] != records[gone]["user_id"]
        )
        records[renew] = {**records[renew], "issued_on": TODAY.isoformat()}
    assert sync(cli, "--dry-run")["pull"]["since_last"] is None  # a dry run keeps no snapshot
    doc = sync(cli)
    assert doc["pull"]["since_last"] == {"added": 0, "removed": 0, "changed": 2}
    assert doc["counts"]["revoke"] == 1 and doc["counts"]["renew"] == 1
    actions = [r["action"] for r in doc["write_requests"]]
    assert actions.index("assign") > max(i for i, a in enumerate(actions) if a == "reset")
    assert sandbox_state.active_pairs() == desired_pairs(sandbox_state, world)
    assert len(sandbox_state.active_pairs()) == len(desired) - 1
    assert sync(cli)["write_requests"] == []


def test_a_holding_certsync_did_not_issue_is_left_alone_unless_authoritative(
    cli: Cli, sandbox_state: SandboxState, world: World
) -> None:
    """A certificate issued by hand in Monotree survives syncs; with authoritative it is revoked."""
    outsider = world.monotree_ids[9]  # user 9 is unmapped: Natecosmic says nothing of them
    sandbox_state.issue(world.template_ids[0], outsider, TODAY - timedelta(days=3))
    doc = sync(cli)
    assert doc["counts"]["not_owned_left_alone"] == 1
    assert (world.template_ids[0], outsider) in sandbox_state.active_pairs()
    text = (cli.cwd / "mappings.toml").read_text()
    key = world.type_ids[0]
    (cli.cwd / "mappings.toml").write_text(
        text.replace(f'natecosmic = "{key}"\n', f'natecosmic = "{key}"\nauthoritative = true\n')
    )
    doc = sync(cli, "--full")
    assert doc["plan"]["revoke"] == [
        {
            "certificate_id": world.template_ids[0],
            "user_id": outsider,
            "owned": False,
            "unmapped": False,
        }
    ]
    assert (world.template_ids[0], outsider) not in sandbox_state.active_pairs()


def test_unmapped_and_rejected_records_are_reported(
    cli: Cli, sandbox_state: SandboxState, world: World
) -> None:
    """Unmapped types and users, and invalid records, are listed in the JSON report; exit 0."""
    with sandbox_state.lock:
        sandbox_state.records.append(
            {"id": "broken", "user_id": world.user_ids[0], "issued_on": "2026-02-30"}
        )
    doc = sync(cli)
    kinds = {u["kind"] for u in doc["plan"]["unmapped"]}
    assert kinds == {"type", "user"}
    assert {u["key"] for u in doc["plan"]["unmapped"] if u["kind"] == "user"} == set(
        world.unmapped_users
    )
    assert [r["record_id"] for r in doc["plan"]["rejected"]] == ["broken"]
    assert "issued_on" in doc["plan"]["rejected"][0]["reason"]


def test_an_unchanged_pull_is_a_304_planned_from_the_kept_snapshot(
    cli: Cli, sandbox_state: SandboxState, world: World
) -> None:
    """The pull's ETag is kept with its snapshot: an unchanged list costs a 304 and no body
    and plans as the body did, rejected records included; a changed list is pulled whole;
    a server without ETags is pulled whole every time. The requests are the same."""
    with sandbox_state.lock:
        sandbox_state.records.append(
            {"id": "broken", "user_id": world.user_ids[0], "issued_on": "2026-02-30"}
        )
    first = sync(cli)
    sandbox_state.reset_counts()
    second = sync(cli)
    assert sandbox_state.statuses["natecosmic 304"] == 1
    assert second["requests_by_api"] == {"monotree": 1, "natecosmic": 1}
    assert second["outcome"] == "converged" and second["write_requests"] == []
    assert second["pull"]["records"] == first["pull"]["records"]
    assert second["pull"]["since_last"] == {"added": 0, "removed": 0, "changed": 0}
    assert [r["record_id"] for r in second["plan"]["rejected"]] == ["broken"]

    with sandbox_state.lock:  # one mapped record revoked upstream: a new body, a new ETag
        sandbox_state.records = [r for r in sandbox_state.records if r["id"] != "broken"]
        gone = next(
            i
            for i, r in enumerate(sandbox_state.records)
            if r.get("lifecycle_status") == "active"
            and r["user_id"] not in world.unmapped_users
            and r.get("certification_type_id") in world.type_ids
        )
        sandbox_state.records[gone] = {**sandbox_state.records[gone], "lifecycle_status": "revoked"}
    sandbox_state.reset_counts()
    third = sync(cli)
    assert sandbox_state.statuses["natecosmic 200"] == 1 and third["counts"]["revoke"] >= 1
    assert sandbox_state.active_pairs() == desired_pairs(sandbox_state, world)

    sandbox_state.etags = False
    sandbox_state.reset_counts()
    sync(cli)
    assert sandbox_state.statuses["natecosmic 200"] == 1
    assert sandbox_state.statuses["natecosmic 304"] == 0


def test_dry_run_makes_no_write_and_prints_the_plan(
    cli: Cli, sandbox_state: SandboxState, world: World
) -> None:
    """sync --dry-run and plan send no write of any kind, and show what a sync would do."""
    doc = sync(cli, "--dry-run")
    assert doc["dry_run"] and doc["counts"]["assign"] == len(desired_pairs(sandbox_state, world))
    table = cli("plan")
    assert table.returncode == 0 and "(dry run: nothing written)" in table.stdout
    assert sandbox_state.count("monotree", "POST") == 0 and sandbox_state.active_pairs() == {}


def test_mass_revoke_guard_exits_3_and_the_override_applies(
    cli: Cli, sandbox_state: SandboxState, world: World
) -> None:
    """Dropping most records upstream holds revocations back (exit 3) until --allow-mass-revoke."""
    sync(cli)
    held = len(sandbox_state.active_pairs())
    with sandbox_state.lock:
        sandbox_state.records = sandbox_state.records[:5]
    doc = sync(cli, expect=3)
    assert (
        doc["outcome"] == "held-back" and "mass-revoke guard" in doc["plan"]["held_back"]["reason"]
    )
    assert len(sandbox_state.active_pairs()) == held
    result = cli("sync")
    assert result.returncode == 3 and "--allow-mass-revoke" in result.stdout
    doc = sync(cli, "--allow-mass-revoke")
    assert doc["counts"]["revoke"] > 10
    assert sandbox_state.active_pairs() == desired_pairs(sandbox_state, world)


def test_an_empty_pull_never_revokes(cli: Cli, sandbox_state: SandboxState, world: World) -> None:
    """An empty Natecosmic list holds every revocation back and exits 3, even with the override."""
    sync(cli)
    held = sandbox_state.active_pairs()
    with sandbox_state.lock:
        sandbox_state.records = []
    doc = sync(cli, "--allow-mass-revoke", expect=3)
    assert "empty" in doc["plan"]["held_back"]["reason"]
    assert sandbox_state.active_pairs() == held


def test_wrong_token_exits_2_naming_the_api_and_never_the_token(cli: Cli, world: World) -> None:
    """A wrong Monotree token: exit 2, one line naming monotree and 401, no token anywhere."""
    secret = "mono_definitely_wrong_secret_123"
    result = cli("sync", CERTSYNC_MONOTREE__TOKEN=secret)
    assert result.returncode == 2
    assert "monotree: 401 Unauthorized" in result.stdout + result.stderr
    assert secret not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_a_quarter_of_requests_failing_still_converges(
    cli: Cli, sandbox_state: SandboxState, world: World
) -> None:
    """With 25% of answers 429 or 503 (seeded), the sync retries its way to convergence."""
    sandbox_state.set_faults(
        FaultConfig(error_rate=0.25, error_statuses=(429, 503), retry_after=0, seed=3)
    )
    doc = sync(cli, CERTSYNC_CLIENT__MAX_ATTEMPTS="8")
    assert doc["outcome"] == "converged"
    assert sum(n for k, n in sandbox_state.statuses.items() if k.endswith(("429", "503"))) > 0
    sandbox_state.set_faults(FaultConfig())
    assert sandbox_state.active_pairs() == desired_pairs(sandbox_state, world)
    assert sync(cli)["write_requests"] == []


def test_monotree_rate_limit_is_respected_without_429(
    cli: Cli, sandbox_state: SandboxState, world: World
) -> None:
    """Past X-RateLimit-Remaining, certsync waits for the window instead of earning a 429."""
    sandbox_state.limiter.per_minute = 2
    sandbox_state.limiter.window = 2.0
    started = time.monotonic()
    sync(cli, "--full")
    monotree_requests = sandbox_state.count("monotree")
    assert monotree_requests > 2  # so at least one window had to be waited out
    assert time.monotonic() - started >= 2.0
    assert not any(k.endswith(" 429") for k in sandbox_state.statuses)


def test_sigkill_after_a_write_was_sent_then_the_next_run_converges_and_keeps_ownership(
    cli: Cli, sandbox_state: SandboxState, world: World
) -> None:
    """Killed between the assign and its outcome: the next run recovers, owns what was issued."""
    sandbox_state.script(Fault("POST /certificates/assign", "delay-after", delay=60))
    proc = cli.popen("sync")
    deadline = time.monotonic() + 30
    while not sandbox_state.active_pairs():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)

    db = sqlite3.connect(cli.cwd / "certsync.db")
    assert db.execute("SELECT COUNT(*) FROM journal WHERE outcome IS NULL").fetchone()[0] == 1
    owned_before = db.execute("SELECT COUNT(*) FROM ownership").fetchone()[0]
    db.close()
    assert owned_before == len(desired_pairs(sandbox_state, world))

    doc = sync(cli)
    assert doc["write_requests"] == [] and doc["templates_read"] == world.template_ids
    assert sandbox_state.active_pairs() == desired_pairs(sandbox_state, world)
    status = cli("status")
    assert "interrupted" in status.stdout

    # Still owned: revoke one upstream and certsync revokes it.
    with sandbox_state.lock:
        victim = next(
            i
            for i, r in enumerate(sandbox_state.records)
            if r["user_id"] not in world.unmapped_users
            and r["certification_type_id"] in world.type_ids
            and r["lifecycle_status"] == "active"
            and r["validity_status"] == "valid"
        )
        sandbox_state.records[victim] = {
            **sandbox_state.records[victim],
            "lifecycle_status": "revoked",
        }
    assert sync(cli)["counts"]["revoke"] == 1
    assert sandbox_state.active_pairs() == desired_pairs(sandbox_state, world)


def test_status_lists_runs_and_json_has_no_secret(cli: Cli, world: World) -> None:
    """`status` shows recent runs; neither output, logs nor the database hold a token."""
    result = cli("sync", "--format", "json")
    status = cli("status", "--format", "json")
    runs = json.loads(status.stdout)
    assert runs[0]["outcome"] == "converged"
    db_bytes = (
        (cli.cwd / "certsync.db").read_bytes() + (cli.cwd / "certsync.db-wal").read_bytes()
        if (cli.cwd / "certsync.db-wal").exists()
        else (cli.cwd / "certsync.db").read_bytes()
    )
    for token in (cli.env["CERTSYNC_NATECOSMIC__TOKEN"], cli.env["CERTSYNC_MONOTREE__TOKEN"]):
        assert token not in result.stdout + result.stderr + status.stdout
        assert token.encode() not in db_bytes


def test_the_sandbox_command_serves_a_world_that_certsync_syncs(tmp_path: Path) -> None:
    """`certsync sandbox` in one process, `certsync sync` in another, as the README shows."""
    n_port, m_port = free_port(), free_port()
    sandbox = subprocess.Popen(
        [
            CERTSYNC,
            "sandbox",
            "--natecosmic-port",
            str(n_port),
            "--monotree-port",
            str(m_port),
            "--users",
            "8",
            "--types",
            "2",
        ],
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert sandbox.stdout is not None
        first = sandbox.stdout.readline()
        assert first.strip() == f"Natecosmic sandbox: http://127.0.0.1:{n_port}"
        exports: dict[str, str] = {}
        for line in sandbox.stdout:  # the banner ends with "Press Ctrl-C to stop."
            exports.update(_export(line))
            if line.startswith("Press Ctrl-C"):
                break
        assert set(exports) >= {
            "CERTSYNC_NATECOSMIC__TOKEN",
            "CERTSYNC_MONOTREE__BASE_URL",
            "CERTSYNC_MAPPINGS_FILE",
        }
        env = {
            **clean_env(),
            **exports,
            "CERTSYNC_DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}",
            "CERTSYNC_SECRETS_DIR": str(tmp_path),
        }
        result = subprocess.run(
            [CERTSYNC, "sync", "--format", "json"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        assert json.loads(result.stdout)["counts"]["assign"] > 0
    finally:
        sandbox.send_signal(signal.SIGINT)
        assert sandbox.wait(timeout=20) == 0


def _export(line: str) -> dict[str, str]:
    line = line.strip()
    if not line.startswith("export "):
        return {}
    key, _, value = line.removeprefix("export ").partition("=")
    return {key: value}
