"""Crash campaign: SIGKILL the sync at seeded points of its apply, restart, and check nothing is lost.

The whole campaign (20 kills) takes about fifteen seconds, so `make test` runs all of it.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import time
from dataclasses import dataclass
from datetime import date

import pytest

from certsync.sandbox import FaultConfig, SandboxState, generate
from tests.conftest import Cli
from tests.test_e2e import desired_pairs, sync

pytestmark = pytest.mark.e2e
KILLS = int(os.environ.get("CERTSYNC_CRASH_KILLS", "20"))
TODAY = date.today()


@dataclass(frozen=True)
class StoreFacts:
    open_intents: int
    open_runs: int
    owned: set[tuple[int, int]]
    journal: int


def store_facts(cli: Cli) -> StoreFacts:
    db = sqlite3.connect(cli.cwd / "certsync.db")
    try:
        return StoreFacts(
            open_intents=db.execute(
                "SELECT COUNT(*) FROM journal WHERE outcome IS NULL"
            ).fetchone()[0],
            open_runs=db.execute(
                "SELECT COUNT(*) FROM run WHERE ended_at IS NULL AND kind != 'dry'"
            ).fetchone()[0],
            owned=set(db.execute("SELECT certificate_id, user_id FROM ownership")),
            journal=db.execute("SELECT COUNT(*) FROM journal").fetchone()[0],
        )
    finally:
        db.close()


def perturb(state: SandboxState, rng: random.Random) -> None:
    """Give the next run work of every kind: holdings expired by hand in Monotree (to assign
    again), records revoked upstream (to revoke) and records renewed upstream (to renew)."""
    now = state.clock()
    with state.lock:
        active = sorted(p for p, i in state.issuances.items() if not i.is_expired(now))
        for pair in rng.sample(active, min(10, len(active))):
            state.issuances[pair].expires_at = now
        live = [i for i, r in enumerate(state.records) if r["lifecycle_status"] == "active"]
        for i in rng.sample(live, 2):
            state.records[i] = {**state.records[i], "lifecycle_status": "revoked"}
        live = [i for i, r in enumerate(state.records) if r["lifecycle_status"] == "active"]
        for i in rng.sample(live, 2):
            renewed = {**state.records[i], "issued_on": TODAY.isoformat()}
            state.records[i] = {**renewed, "id": f"{renewed['id']}-r{rng.randrange(10**6)}"}


def test_crash_campaign(cli: Cli, sandbox_state: SandboxState) -> None:
    """After KILLS seeded SIGKILLs inside applies and a last clean run: converged, all owned, journal closed."""
    rng = random.Random(2026)
    world = generate(
        sandbox_state, users=80, types=3, seed=8, today=TODAY, per_user=2, inactive_share=0.0
    )
    (cli.cwd / "mappings.toml").write_text(world.mapping_toml)
    sandbox_state.set_faults(FaultConfig(latency=0.02, apis=("monotree",)))
    env = {"CERTSYNC_SYNC__CHUNK_SIZE": "4", "CERTSYNC_SCHEDULE__FULL_EVERY": "1"}
    sync(cli.using(env))

    kill_points: list[tuple[int, int]] = []
    killed_in_apply = 0
    for _ in range(KILLS):
        perturb(sandbox_state, rng)
        before = sandbox_state.count("monotree", "POST")
        after_writes = rng.randrange(0, 4)
        proc = cli.using(env).popen("sync")
        deadline = time.monotonic() + 30
        while sandbox_state.count("monotree", "POST") < before + after_writes + 1:
            if proc.poll() is not None or time.monotonic() > deadline:
                break
            time.sleep(0.002)
        time.sleep(rng.uniform(0.0, 0.03))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        facts = store_facts(cli)
        assert facts.open_intents <= 4  # at most the requests in flight (concurrency 4)
        killed_in_apply += proc.returncode == -signal.SIGKILL
        kill_points.append((after_writes, sandbox_state.count("monotree", "POST") - before))

    final = sync(cli.using(env), "--full")
    facts = store_facts(cli)
    assert final["outcome"] == "converged"
    assert sandbox_state.active_pairs() == desired_pairs(sandbox_state, world)
    issued = sandbox_state.api_issued_active()
    assert issued <= facts.owned
    assert facts.open_intents == 0 and facts.open_runs == 0
    assert sync(cli.using(env))["write_requests"] == []
    print(
        f"\ncrash campaign: {KILLS} SIGKILLs, {killed_in_apply} of them inside an apply, "
        f"at (writes waited for, writes sent) {kill_points}; journal {facts.journal} entries, "
        f"none left open after recovery; {len(issued)} active holdings issued by certsync, all owned; "
        f"final state converged with {len(sandbox_state.active_pairs())} active holdings"
    )
