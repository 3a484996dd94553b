"""Review and approve, end to end: the guard's held-back revocations approved or rejected
by id, from the command line and the daemon's admin API; saved plans applied exactly."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from certsync.sandbox import Fault, SandboxState, World, generate
from tests.conftest import Cli, metric_sum, wait_for

pytestmark = pytest.mark.e2e
ADMIN = "admin-token-for-the-approve-test-9b2e"


@pytest.fixture
def world(sandbox_state: SandboxState, cli: Cli) -> World:
    w = generate(sandbox_state, users=40, types=2, seed=3, today=date.today(), inactive_share=0)
    (cli.cwd / "mappings.toml").write_text(w.mapping_toml)
    return w


def set_status(state: SandboxState, indexes: range | list[int], status: str) -> None:
    with state.lock:
        for i in indexes:
            state.records[i] = {**state.records[i], "lifecycle_status": status}


def pair_of(state: SandboxState, world: World, index: int) -> tuple[int, int]:
    r = state.records[index]
    return (
        world.template_ids[world.type_ids.index(r["certification_type_id"])],
        world.monotree_ids[world.user_ids.index(r["user_id"])],
    )


def hold_forty(cli: Cli, state: SandboxState) -> str:
    """A full sync, then 40 of the 80 records revoked upstream: the guard holds them."""
    assert cli("sync").returncode == 0
    set_status(state, range(40), "revoked")
    held = cli("sync")
    assert held.returncode == 3, held.stderr[-2000:]
    run_id: str = json.loads(cli("status", "--format", "json").stdout)[0]["id"]
    assert f"certsync approve {run_id}" in held.stdout
    return run_id


def test_approve_sends_exactly_the_held_set_checked_afresh(
    cli: Cli, sandbox_state: SandboxState, world: World
) -> None:
    run_id = hold_forty(cli, sandbox_state)
    status = cli("status")
    assert f"40 revocation(s) held back by run {run_id}" in status.stdout
    active = sandbox_state.active_pairs()
    back = pair_of(sandbox_state, world, 0)
    set_status(sandbox_state, [0], "active")  # held upstream again since the hold
    later = pair_of(sandbox_state, world, 50)
    set_status(sandbox_state, [50], "revoked")  # revoked upstream after the hold

    dry = cli("approve", run_id, "--dry-run", "--format", "json")
    assert dry.returncode == 0 and json.loads(dry.stdout)["counts"]["revoke"] == 39
    assert sandbox_state.active_pairs() == active  # a dry run sends nothing

    sandbox_state.reset_counts()
    done = cli("approve", run_id, "--by", "alice", "--format", "json")
    assert done.returncode == 0, done.stderr[-2000:]
    doc = json.loads(done.stdout)
    assert doc["kind"] == "approve" and doc["counts"]["revoke"] == 39
    assert [(s["certificate_id"], s["user_id"]) for s in doc["skipped"]] == [back]
    revoked = set(active) - set(sandbox_state.active_pairs())
    assert len(revoked) == 39 and back not in revoked and later not in revoked
    assert sandbox_state.count("natecosmic") == 1
    assert sandbox_state.count("monotree", "POST") == len(doc["write_requests"])

    again = cli("approve", run_id)
    assert again.returncode == 1
    assert f"the held-back plan {run_id} was already approved by alice" in again.stderr
    unknown = cli("approve", "0123456789abcdef")
    assert unknown.returncode == 1 and "no held-back plan has the id" in unknown.stderr
    # The next run takes care of the one revoked after the hold.
    after = json.loads(cli("sync", "--format", "json").stdout)
    assert [(r["certificate_id"], r["user_id"]) for r in after["plan"]["revoke"]] == [later]


def test_reject_drops_them_and_a_later_run_supersedes(
    cli: Cli, sandbox_state: SandboxState, world: World
) -> None:
    run_id = hold_forty(cli, sandbox_state)
    active = sandbox_state.active_pairs()
    rejected = cli("reject", run_id, "--by", "bob")
    assert rejected.returncode == 0 and "rejected the 40 held-back revocation(s)" in rejected.stdout
    assert "waiting for a decision" not in cli("status").stdout
    assert cli("approve", run_id).returncode == 1
    assert sandbox_state.active_pairs() == active

    held_again = cli("sync", "--full")  # holds them back again, under its own id
    assert held_again.returncode == 3
    newer = json.loads(cli("status", "--format", "json").stdout)[0]
    assert newer["held_back_waiting"] == 40
    # The same 40 held back again: the plan keeps its id, an operator may be reading it.
    assert cli("sync").returncode == 3
    assert f"certsync approve {newer['id']}" in cli("status").stdout
    set_status(sandbox_state, [0], "active")  # now 39: another plan, the old one superseded
    assert cli("sync").returncode == 3
    gone = cli("approve", newer["id"])
    assert gone.returncode == 1 and "was already superseded" in gone.stderr
    assert cli("status").stdout.count("waiting for a decision") == 1


def test_a_saved_plan_is_applied_exactly_or_refused_when_stale(
    cli: Cli, sandbox_state: SandboxState, world: World, tmp_path: Path
) -> None:
    assert cli("sync").returncode == 0
    set_status(sandbox_state, [1, 2], "revoked")
    saved = tmp_path / "plan.json"
    planned = cli("plan", "--out", str(saved), "--format", "json")
    assert planned.returncode == 0 and json.loads(planned.stdout)["counts"]["revoke"] == 2
    set_status(sandbox_state, [3], "revoked")  # not in the saved plan: not sent by apply
    sandbox_state.reset_counts()
    applied = cli("apply", str(saved), "--format", "json")
    assert applied.returncode == 0, applied.stderr[-2000:]
    doc = json.loads(applied.stdout)
    assert doc["kind"] == "apply" and doc["counts"]["revoke"] == 2
    assert sandbox_state.count("monotree", "POST") == len(doc["write_requests"])
    assert pair_of(sandbox_state, world, 3) in sandbox_state.active_pairs()

    sandbox_state.reset_counts()
    stale = cli("apply", str(saved))
    assert stale.returncode == 2
    assert "the plan is stale: run plan again" in stale.stdout + stale.stderr
    assert sandbox_state.count("monotree", "POST") == 0
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    refused = cli("apply", str(broken))
    assert refused.returncode == 2 and "not a plan saved by" in refused.stderr


def test_the_admin_api_lists_and_approves_held_plans_with_its_token(
    cli: Cli,
    sandbox_state: SandboxState,
    world: World,
    daemons: Callable[..., tuple[Any, str]],
) -> None:
    run_id = hold_forty(cli, sandbox_state)
    proc, base = daemons(CERTSYNC_SCHEDULE__INTERVAL="3600", CERTSYNC_HTTP__ADMIN_TOKEN=ADMIN)
    auth = {"Authorization": f"Bearer {ADMIN}"}
    wait_for(lambda: httpx.get(f"{base}/healthz").json()["runs"] >= 1, what="the first cycle")
    assert httpx.get(f"{base}/plans/held").status_code == 401
    listed = httpx.get(f"{base}/plans/held", headers=auth).json()
    # The daemon's first cycle held the same 40 back: the plan kept its id.
    assert [(p["run_id"], p["revocations"]) for p in listed] == [(run_id, 40)]
    assert metric_sum(httpx.get(f"{base}/metrics").text, "certsync_held_back_revocations") == 40
    assert httpx.post(f"{base}/plans/{run_id}/approve").status_code == 401
    assert httpx.post(f"{base}/plans/nope/approve", headers=auth).status_code == 404
    accepted = httpx.post(f"{base}/plans/{run_id}/approve", json={"by": "carol"}, headers=auth)
    assert accepted.status_code == 202, accepted.text
    ticket = accepted.json()["id"]

    def finished() -> bool:
        state = httpx.get(f"{base}/runs/{ticket}", headers=auth).json()["state"]
        return state in ("done", "failed")

    wait_for(finished, what="the approval")
    run = httpx.get(f"{base}/runs/{ticket}", headers=auth).json()
    assert (run["state"], run["outcome"], run["counts"]["revoke"]) == ("done", "converged", 40)
    assert httpx.get(f"{base}/plans/held", headers=auth).json() == []
    assert metric_sum(httpx.get(f"{base}/metrics").text, "certsync_held_back_revocations") == 0
    again = httpx.post(f"{base}/plans/{run_id}/approve", headers=auth)
    assert again.status_code == 409 and again.json()["decided_by"] == "carol"
    proc.terminate()
    _, stderr = proc.communicate(timeout=30)
    assert ADMIN not in stderr


def test_an_approval_that_fails_some_stays_held_and_a_second_sends_the_rest(
    cli: Cli, sandbox_state: SandboxState, world: World
) -> None:
    run_id = hold_forty(cli, sandbox_state)
    # Monotree refuses every reset of the first template, down to each single user.
    sandbox_state.script(
        Fault(rf"POST .*/certificates/{world.template_ids[0]}/reset", "status", 422, times=999)
    )
    first = cli("approve", run_id, "--format", "json")
    assert first.returncode == 1, first.stderr[-2000:]
    sent = json.loads(first.stdout)
    assert sent["counts"]["failed_requests"] > 0 and sent["outcome"] == "partial"
    with sandbox_state.lock:
        sandbox_state.scripted.clear()
    assert f"40 revocation(s) held back by run {run_id}" in cli("status").stdout  # still held
    second = cli("approve", run_id, "--format", "json")
    assert second.returncode == 0, second.stderr[-2000:]
    rest = json.loads(second.stdout)
    assert rest["counts"]["revoke"] + rest["counts"]["skipped"] == 40
    assert rest["counts"]["revoke"] > 0 and rest["counts"]["skipped"] > 0  # the done ones
    assert "waiting for a decision" not in cli("status").stdout
