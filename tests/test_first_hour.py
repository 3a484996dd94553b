"""A new operator's first hour, end to end: every mistake shows at once and names what to fix.

The real `certsync` command and daemon against the sandbox over HTTP on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from certsync.sandbox import Sandbox, SandboxState, World, generate
from tests.conftest import Cli, metric_sum, revoke_upstream, wait_for

pytestmark = pytest.mark.e2e

Daemons = Callable[..., tuple[subprocess.Popen[str], str]]


@pytest.fixture
def world(sandbox_state: SandboxState, cli: Cli) -> World:
    w = generate(sandbox_state, users=12, types=2, seed=3, today=date.today(), inactive_share=0.0)
    (cli.cwd / "mappings.toml").write_text(w.mapping_toml)
    return w


def sync_json(cli: Cli, *args: str, expect: int = 0) -> dict[str, Any]:
    result = cli("sync", "--format", "json", *args)
    assert result.returncode == expect, result.stderr[-2000:]
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def put_secret(path: Path, value: str) -> None:
    """Replace a secret file at once, as the kubelet swaps a mounted Secret."""
    fresh = path.with_suffix(".new")
    fresh.write_text(value + "\n")
    os.replace(fresh, path)


def without_blocks(toml: str, drop: Callable[[str], bool]) -> str:
    return "\n\n".join(block for block in toml.split("\n\n") if not drop(block))


def test_a_wrong_monotree_token_fails_a_quiet_cycle_with_exit_2(
    cli: Cli, sandbox_state: SandboxState, world: World
) -> None:
    """An incremental cycle reads the template list: a bad token can no longer pass as converged."""
    sync_json(cli)
    sandbox_state.reset_counts()
    quiet = sync_json(cli)
    assert quiet["kind"] == "incremental" and quiet["outcome"] == "converged"
    assert quiet["requests_by_api"] == {"monotree": 1, "natecosmic": 1}

    wrong = cli.using({"CERTSYNC_MONOTREE__TOKEN": "mono_wrong_token_123"})("sync")
    assert wrong.returncode == 2
    assert "401 Unauthorized" in wrong.stdout
    assert "it came from CERTSYNC_MONOTREE__TOKEN" in wrong.stdout
    assert "converged" not in wrong.stdout
    assert "mono_wrong_token_123" not in wrong.stdout + wrong.stderr


def test_the_daemon_uses_a_rotated_token_file_with_no_restart(
    cli: Cli, sandbox_state: SandboxState, world: World, daemons: Daemons
) -> None:
    token_file = cli.cwd / "monotree_token"
    put_secret(token_file, sandbox_state.monotree_token)
    proc, base = daemons(CERTSYNC_MONOTREE__TOKEN="", CERTSYNC_MONOTREE__TOKEN_FILE=str(token_file))
    wait_for(lambda: httpx.get(f"{base}/readyz").status_code == 200, what="ready")

    # Monotree now accepts only the new token, and the Secret is updated in place.
    with sandbox_state.lock:
        scopes = sandbox_state.tokens["monotree"].pop(sandbox_state.monotree_token)
        sandbox_state.tokens["monotree"]["mono_rotated_token_42"] = scopes
    put_secret(token_file, "mono_rotated_token_42")
    pair = revoke_upstream(sandbox_state, world)
    wait_for(lambda: pair not in sandbox_state.active_pairs(), what="a cycle with the new token")
    health = httpx.get(f"{base}/healthz").json()
    assert health["consecutive_failures"] == 0
    assert httpx.get(f"{base}/readyz").status_code == 200
    assert proc.poll() is None  # the same process: no restart
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert proc.stderr is not None
    assert "mono_rotated_token_42" not in proc.stderr.read()


def test_after_a_failed_full_cycle_the_daemon_is_not_ready_and_retries_a_full_cycle(
    cli: Cli, sandbox_state: SandboxState, world: World, daemons: Daemons
) -> None:
    sync_json(cli)  # a recent full cycle: by the schedule alone the next would be incremental
    token_file = cli.cwd / "monotree_token"
    put_secret(token_file, "mono_not_valid_yet_9")
    proc, base = daemons(CERTSYNC_MONOTREE__TOKEN="", CERTSYNC_MONOTREE__TOKEN_FILE=str(token_file))
    wait_for(
        lambda: httpx.get(f"{base}/healthz").json()["consecutive_failures"] >= 2,
        what="two failed cycles",
    )
    ready = httpx.get(f"{base}/readyz")
    assert ready.status_code == 503
    assert "401 Unauthorized" in ready.json()["reason"]
    assert str(token_file) in ready.json()["reason"]
    assert proc.poll() is None  # an auth error does not end the daemon

    put_secret(token_file, sandbox_state.monotree_token)
    wait_for(lambda: httpx.get(f"{base}/readyz").status_code == 200, what="ready again")
    metrics = httpx.get(f"{base}/metrics").text
    assert metric_sum(metrics, "certsync_last_success_timestamp_seconds") > 0
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0

    runs = json.loads(cli("status", "--limit", "20", "--format", "json").stdout)
    daemon_runs = sorted(runs, key=lambda r: r["started_at"])[1:]
    failed = [r for r in daemon_runs if r["outcome"] == "error"]
    first_success = next(r for r in daemon_runs if r["outcome"] == "converged")
    assert len(failed) >= 2 and all(r["kind"] == "full" for r in failed)
    assert first_success["kind"] == "full"


def test_a_base_url_copied_with_the_api_path_works_with_one_warning(
    cli: Cli, sandbox: Sandbox, world: World
) -> None:
    url = sandbox.env()["CERTSYNC_MONOTREE__BASE_URL"] + "/api/open/v1/"
    result = cli.using({"CERTSYNC_MONOTREE__BASE_URL": url})("sync", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("ends in /api/open/v1") == 1
    assert json.loads(result.stdout)["outcome"] == "converged"


def test_a_404_from_a_list_endpoint_is_a_base_url_error_not_a_missing_template(
    cli: Cli, sandbox: Sandbox, world: World
) -> None:
    url = sandbox.env()["CERTSYNC_MONOTREE__BASE_URL"] + "/monotree"
    result = cli.using({"CERTSYNC_MONOTREE__BASE_URL": url})("sync", "--format", "json")
    assert result.returncode == 2
    doc = json.loads(result.stdout)
    assert "answered 404: check CERTSYNC_MONOTREE__BASE_URL" in doc["error"]
    assert doc["counts"]["missing_templates"] == 0 and doc["counts"]["unmapped"] == 0


def test_removing_a_user_mapping_keeps_its_certificates_as_unmanaged_until_it_returns(
    cli: Cli, sandbox_state: SandboxState, world: World
) -> None:
    sync_json(cli)
    held = sandbox_state.active_pairs()
    user = world.user_ids[0]
    monotree_user = world.monotree_ids[0]
    theirs = {pair for pair in held if pair[1] == monotree_user}
    assert theirs
    mappings = cli.cwd / "mappings.toml"
    mappings.write_text(without_blocks(world.mapping_toml, lambda b: f'"{user}"' in b))

    doc = sync_json(cli, "--full")
    assert doc["counts"]["revoke"] == 0 and doc["counts"]["unmanaged"] == len(theirs)
    assert {(u["certificate_id"], u["user_id"]) for u in doc["plan"]["unmanaged"]} == theirs
    assert sandbox_state.active_pairs() == held

    mappings.write_text(world.mapping_toml)  # the mapping returns: management resumes
    with sandbox_state.lock:
        for i, r in enumerate(sandbox_state.records):
            if r["user_id"] == user:
                sandbox_state.records[i] = {**r, "lifecycle_status": "revoked"}
    doc = sync_json(cli, "--full")
    assert doc["counts"]["unmanaged"] == 0 and doc["counts"]["revoke"] == len(theirs)
    assert not {pair for pair in sandbox_state.active_pairs() if pair[1] == monotree_user}


def test_removing_a_type_mapping_revokes_nothing_unless_revoke_unmapped(
    cli: Cli, sandbox_state: SandboxState, world: World
) -> None:
    sync_json(cli)
    held = sandbox_state.active_pairs()
    template = world.template_ids[0]
    of_template = {pair for pair in held if pair[0] == template}
    mappings = cli.cwd / "mappings.toml"
    dropped = without_blocks(world.mapping_toml, lambda b: f"monotree = {template}\n" in b + "\n")
    assert dropped != world.mapping_toml
    mappings.write_text(dropped)

    doc = sync_json(cli)
    assert doc["counts"]["revoke"] == 0 and doc["counts"]["unmanaged"] == len(of_template)
    assert sandbox_state.active_pairs() == held

    mappings.write_text(dropped.replace("revoke = true", "revoke = true\nrevoke_unmapped = true"))
    guarded = sync_json(cli, "--full", expect=3)  # every one of them at once trips the guard
    assert guarded["counts"]["held_back"] == len(of_template)
    doc = sync_json(cli, "--full", "--allow-mass-revoke")
    assert doc["counts"]["revoke"] == len(of_template)
    assert all(v["unmapped"] for v in doc["plan"]["revoke"])
    assert not {pair for pair in sandbox_state.active_pairs() if pair[0] == template}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_plan_leaves_the_store_byte_for_byte_as_it_was(
    cli: Cli, sandbox_state: SandboxState, world: World
) -> None:
    """Even with a changed mapping file and upstream changes to show, plan writes nothing."""
    sync_json(cli)
    db = cli.cwd / "certsync.db"
    before = digest(db)
    runs_before = cli("status", "--format", "json").stdout
    (cli.cwd / "mappings.toml").write_text(
        without_blocks(world.mapping_toml, lambda b: f'"{world.user_ids[1]}"' in b)
    )
    with sandbox_state.lock:
        sandbox_state.records[0] = {**sandbox_state.records[0], "lifecycle_status": "revoked"}
    writes = sandbox_state.count("monotree", "POST")

    planned = cli("plan", "--format", "json")
    assert planned.returncode == 0, planned.stderr
    assert json.loads(planned.stdout)["counts"]["revoke"] == 1
    assert digest(db) == before
    assert not Path(f"{db}-wal").exists() or Path(f"{db}-wal").stat().st_size == 0
    assert cli("status", "--format", "json").stdout == runs_before
    assert sandbox_state.count("monotree", "POST") == writes


def test_plan_on_a_machine_with_no_store_creates_none(cli: Cli, world: World) -> None:
    result = cli("plan", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["counts"]["assign"] > 0
    assert not (cli.cwd / "certsync.db").exists()
    # A file made ready for the store (touched, or a volume's empty file) stays empty.
    (cli.cwd / "certsync.db").touch()
    result = cli("plan", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert (cli.cwd / "certsync.db").stat().st_size == 0


def test_every_cycle_names_deleted_and_unpublished_templates(
    cli: Cli, sandbox_state: SandboxState, world: World
) -> None:
    """Found by the template list on a quiet incremental cycle, without reading holders."""
    sync_json(cli)
    drafted, deleted = world.template_ids[0], world.template_ids[1]
    with sandbox_state.lock:
        sandbox_state.templates[drafted].is_published = False
        sandbox_state.templates[deleted].deleted = True
    sandbox_state.reset_counts()
    doc = sync_json(cli, expect=1)  # a mapped template that is gone needs its mapping fixed
    assert doc["kind"] == "incremental"
    assert doc["requests_by_api"] == {"monotree": 1, "natecosmic": 1}
    assert doc["unpublished_templates"] == [drafted]
    assert doc["names"]["templates"][str(drafted)] == sandbox_state.templates[drafted].title
    assert doc["missing_templates"] == [deleted]
    table = cli("sync").stdout
    keys = (world.type_ids[1], world.type_slugs[1])  # the mapping file names it either way
    assert any(f"template {deleted} (mapped from '{key}')" in table for key in keys)
    assert f"template {drafted} '{sandbox_state.templates[drafted].title}'" in table
    assert "missing in Monotree: fix their type mapping." in table.splitlines()[-1]
