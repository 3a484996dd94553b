"""One person at a time, end to end: `explain`, `sync --user`, `POST /runs`, `history --user`."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from typing import Any

import httpx
import pytest

from certsync.sandbox import SandboxState, World, generate
from certsync.store import Store
from tests.conftest import Cli, wait_for

pytestmark = pytest.mark.e2e
ADMIN = "admin-token-for-the-on-demand-test-5f1c"


@pytest.fixture
def world(sandbox_state: SandboxState, cli: Cli) -> World:
    w = generate(
        sandbox_state,
        users=30,
        types=3,
        seed=21,
        today=date.today(),
        inactive_share=0.0,
        unmapped_type=True,
    )
    (cli.cwd / "mappings.toml").write_text(w.mapping_toml)
    return w


def records_of(state: SandboxState, user: str) -> list[int]:
    with state.lock:
        return [
            i
            for i, r in enumerate(state.records)
            if r["user_id"] == user and r["lifecycle_status"] == "active"
        ]


def revoke(state: SandboxState, index: int) -> None:
    with state.lock:
        state.records[index] = {**state.records[index], "lifecycle_status": "revoked"}


def explained(cli: Cli, user: str) -> dict[str, Any]:
    done = cli("explain", user, "--format", "json")
    assert done.returncode == 0, done.stderr[-2000:]
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


def test_explain_names_the_reason_in_each_case(
    cli: Cli, sandbox_state: SandboxState, world: World
) -> None:
    assert cli("sync").returncode == 0
    ann, bob = world.user_ids[0], world.user_ids[1]
    # An assign due: a new record for Ann, today.
    with sandbox_state.lock:
        fresh = {**sandbox_state.records[records_of(sandbox_state, ann)[0]], "id": "r-new"}
        fresh["issued_on"] = date.today().isoformat()
        sandbox_state.records.append(fresh)
    # Held back by the guard: half of everyone's records revoked upstream, Bob's among them.
    for i in range(0, len(sandbox_state.records) - 1, 2):
        revoke(sandbox_state, i)
    revoke(sandbox_state, records_of(sandbox_state, bob)[0])
    sandbox_state.reset_counts()

    doc = explained(cli, ann)
    assert sandbox_state.count() == 3  # the pull, the template list, Ann's certificates
    assert sandbox_state.count("monotree", "POST") == 0
    renewal = next(r for r in doc["records"] if r["record_id"] == "r-new")
    assert renewal["next_sync"].startswith("renew (reset, then assign issued")

    doc = explained(cli, bob)
    verdicts = [h["next_sync"] for h in doc["holdings"]]
    assert any(v.startswith("held back: mass-revoke guard") for v in verdicts), verdicts
    assert doc["next_sync"]["held_back"] >= 1

    # An unmapped type: the generated world has records of a type no mapping names.
    with sandbox_state.lock:
        unmapped_user = next(
            r["user_id"]
            for r in sandbox_state.records
            if r["certification_type_id"] == world.unmapped_type
        )
    doc = explained(cli, unmapped_user)
    assert any(r["next_sync"] == "nothing: unmapped type" for r in doc["records"])

    # Missing in Monotree: a mapped user deactivated since the last sync.
    gone = world.monotree_ids[5]
    with sandbox_state.lock:
        sandbox_state.users[gone] = replace(sandbox_state.users[gone], active=False)
    doc = explained(cli, world.user_ids[5])
    assert any(f"Monotree has no user {gone}" in n for n in doc["notes"])
    held = [r for r in doc["records"] if r["held"] and r["template_id"] is not None]
    assert held and all(r["next_sync"] == f"nothing: Monotree has no user {gone}" for r in held)
    assert cli("status", "--format", "json").stdout.count('"id"') == 1  # explain wrote no run


def test_sync_user_fixes_that_person_only_in_two_reads_plus_writes(
    cli: Cli, sandbox_state: SandboxState, world: World
) -> None:
    assert cli("sync").returncode == 0
    ann, bob = world.user_ids[2], world.user_ids[3]
    ann_id, bob_id = world.monotree_ids[2], world.monotree_ids[3]
    revoke(sandbox_state, records_of(sandbox_state, ann)[0])
    revoke(sandbox_state, records_of(sandbox_state, bob)[0])
    before = sandbox_state.active_pairs()
    sandbox_state.reset_counts()

    done = cli("sync", "--user", ann, "--format", "json")
    assert done.returncode == 0, done.stderr[-2000:]
    doc = json.loads(done.stdout)
    assert doc["kind"] == "user" and doc["counts"]["revoke"] == 1
    writes = len(doc["write_requests"])
    assert sandbox_state.count("natecosmic") == 1
    assert sandbox_state.count("monotree", "GET") == 1  # Ann's certificates, nothing else
    assert sandbox_state.count("monotree", "POST") == writes == 1
    after = sandbox_state.active_pairs()
    gone = set(before) - set(after)
    assert {user for _, user in gone} == {ann_id}  # Ann's revocation, and nothing else
    assert any(user == bob_id for _, user in set(before) & set(after))
    pending = json.loads(cli("plan", "--format", "json").stdout)
    assert [r["user_id"] for r in pending["plan"]["revoke"]] == [bob_id]  # still pending

    assert cli("sync").returncode == 0  # the third sync
    history = cli("history", "--user", ann, "--format", "json")
    items = json.loads(history.stdout)["items"]
    assert [(i["action"], i["run_kind"], i["outcome"]) for i in items][-1] == (
        "revoke",
        "user",
        "ok",
    )
    assert {i["action"] for i in items} == {"assign", "revoke"}
    table = cli("history", "--user", str(ann_id))
    assert "revoked: no longer held in Natecosmic" in table.stdout


def test_a_pending_user_is_said_not_synced(cli: Cli, world: World) -> None:
    done = cli("sync", "--user", "nobody@example.com")
    assert done.returncode == 1
    assert "nobody@example.com is not a registered Monotree user yet" in done.stderr


def _post(base: str, token: str | None, body: object = None) -> httpx.Response:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return httpx.post(f"{base}/runs", json=body, headers=headers, timeout=5)


def test_on_demand_runs_through_the_daemon_need_the_admin_token(
    cli: Cli,
    sandbox_state: SandboxState,
    world: World,
    daemons: Callable[..., tuple[Any, str]],
) -> None:
    proc, base = daemons(CERTSYNC_SCHEDULE__INTERVAL="3600", CERTSYNC_HTTP__ADMIN_TOKEN=ADMIN)
    wait_for(lambda: httpx.get(f"{base}/readyz").status_code == 200, what="the first cycle")
    ann, bob = world.user_ids[4], world.user_ids[6]
    revoke(sandbox_state, records_of(sandbox_state, ann)[0])
    revoke(sandbox_state, records_of(sandbox_state, bob)[0])
    before = sandbox_state.active_pairs()

    assert _post(base, None, {"users": [ann]}).status_code == 401
    assert _post(base, "wrong", {"users": [ann]}).status_code == 401
    assert _post(base, ADMIN, {"users": "ann"}).status_code == 400
    accepted = _post(base, ADMIN, {"users": [ann]})
    assert accepted.status_code == 202, accepted.text
    ticket = accepted.json()["id"]
    assert httpx.get(f"{base}/runs/{ticket}").status_code == 401

    def finished() -> bool:
        got = httpx.get(f"{base}/runs/{ticket}", headers={"Authorization": f"Bearer {ADMIN}"})
        return got.json()["state"] in ("done", "failed")

    wait_for(finished, what="the on-demand run")
    shown = httpx.get(f"{base}/runs/{ticket}", headers={"Authorization": f"Bearer {ADMIN}"})
    run = shown.json()
    assert (run["state"], run["outcome"], run["counts"]["revoke"]) == ("done", "converged", 1)
    gone = set(before) - set(sandbox_state.active_pairs())
    assert {user for _, user in gone} == {world.monotree_ids[4]}  # Bob waits for the schedule
    proc.terminate()
    _, stderr = proc.communicate(timeout=30)
    assert ADMIN not in stderr


def test_without_an_admin_token_the_admin_api_is_off(
    cli: Cli, world: World, daemons: Callable[..., tuple[Any, str]]
) -> None:
    _, base = daemons()
    assert _post(base, ADMIN, {}).status_code in (404, 405)


def test_sync_user_while_a_daemon_holds_the_store_says_how_to_ask_it(
    cli: Cli, world: World
) -> None:
    assert cli("sync").returncode == 0
    store = Store(cli.env["CERTSYNC_DATABASE_URL"])
    try:
        with store.lock.held(timeout=5):
            done = cli("sync", "--user", world.user_ids[0], CERTSYNC_SYNC__LOCK_TIMEOUT="0.5")
    finally:
        store.close()
    assert done.returncode == 1
    assert "is locked by" in done.stderr and "POST /runs" in done.stderr


def test_explain_from_the_kept_pull_asks_natecosmic_nothing(
    cli: Cli, sandbox_state: SandboxState, world: World
) -> None:
    ann = world.user_ids[7]
    refused = cli("explain", ann, "--from-snapshot")
    assert refused.returncode == 1 and "no pull is kept in the store yet" in refused.stderr
    assert cli("sync").returncode == 0
    revoke(sandbox_state, records_of(sandbox_state, ann)[0])  # after the pull was kept
    sandbox_state.reset_counts()

    kept = json.loads(cli("explain", ann, "--from-snapshot", "--format", "json").stdout)
    assert sandbox_state.count("natecosmic") == 0 and sandbox_state.count() == 2
    assert kept["pull"]["kept_at"] is not None
    assert kept["next_sync"]["revoke"] == 0  # the kept pull predates the revocation
    assert explained(cli, ann)["next_sync"]["revoke"] == 1


def test_pruning_the_journal_keeps_what_certsync_owns(
    cli: Cli, sandbox_state: SandboxState, world: World
) -> None:
    assert cli("sync").returncode == 0
    pruned = cli("journal", "prune", "--older-than", "0")
    assert pruned.returncode == 0, pruned.stderr
    assert "journal entr(ies)" in pruned.stdout and "ownership kept" in pruned.stdout
    ann = world.user_ids[8]
    assert json.loads(cli("history", "--user", ann, "--format", "json").stdout)["items"] == []
    # Ownership survived: an upstream revocation is still certsync's to revoke.
    revoke(sandbox_state, records_of(sandbox_state, ann)[0])
    done = json.loads(cli("sync", "--format", "json").stdout)
    assert done["counts"]["revoke"] == 1 and done["counts"]["assign"] == 0
    bad = cli("journal", "prune", "--older-than", "soon")
    assert bad.returncode == 2 and "--older-than" in bad.stderr
