"""Failover with real processes: two `certsync run` replicas on one real PostgreSQL.

The leader applies a large change in many small chunks, each answer held back a
little by the sandbox; at a seeded point it is killed (SIGKILL), paused past its
lease (SIGSTOP, then SIGCONT), stopped (SIGTERM), or PostgreSQL is stopped for
10 s. Each replica sends with a Monotree token of its own, so the sandbox's log
of write requests says who sent what, and when.

`CERTSYNC_FAILOVER_POINTS` sets how many seeded points run: `make test` asks for
4, which gives five (every scenario, kills twice; the suite must stay near five
minutes on two cores); `make reliability` runs 20, whose figures are in
docs/reliability.md.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from certsync.sandbox import Fault, SandboxState, World, generate
from certsync.sandbox.state import MONOTREE_SCOPES
from tests.conftest import Cli, metric_sum, wait_for
from tests.postgres import Postgres
from tests.test_e2e import desired_pairs

pytestmark = pytest.mark.e2e
POINTS = int(os.environ.get("CERTSYNC_FAILOVER_POINTS", "20"))
LEASE = 3.0  # the shortest lease certsync accepts: renewed every second
POLL = 0.2
DELAY = 0.1  # each assign takes effect at once; its answer comes this much later


def _points() -> list[tuple[str, int]]:
    """(scenario, writes the leader sends before the fault), seeded: the same every run.
    Every scenario at least once; the rest shared 4:3:2:1 (kills are the likeliest)."""
    rng = random.Random(16)
    weights = {"sigkill": 4, "sigstop": 3, "sigterm": 2, "outage": 1}
    return [
        (name, rng.randrange(2, 10))
        for name, weight in weights.items()
        for _ in range(max(1, round(POINTS * weight / sum(weights.values()))))
    ]


@dataclass
class Replica:
    token: str
    proc: subprocess.Popen[str]
    base: str
    log: Path

    def leading(self) -> bool:
        try:
            metrics = httpx.get(f"{self.base}/metrics", timeout=2).text
        except httpx.HTTPError:
            return False
        return metric_sum(metrics, "certsync_leader") == 1

    def readiness(self) -> tuple[int, str]:
        answer = httpx.get(f"{self.base}/readyz", timeout=2)
        return answer.status_code, str(answer.json()["reason"])


@dataclass
class Cluster:
    state: SandboxState
    world: World
    url: str
    cli: Cli
    start: Callable[[str], Replica]

    def sent_by(self, replica: Replica, after: float = 0.0) -> int:
        assert self.state.writes is not None
        return sum(1 for w in self.state.writes if w.token == replica.token and w.at > after)

    def converged(self) -> bool:
        return self.state.active_pairs() == desired_pairs(self.state, self.world)

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        engine = create_engine(self.url)
        try:
            with engine.connect() as conn:
                return [tuple(r) for r in conn.execute(text(sql))]
        finally:
            engine.dispose()

    def owned(self) -> set[tuple[int, int]]:
        return {(c, u) for c, u in self.rows("SELECT certificate_id, user_id FROM ownership")}

    def duplicate_writes(self) -> int:
        """Write requests that asked again for a pair an earlier one had asked for."""
        assert self.state.writes is not None
        seen: set[tuple[str, tuple[int, int]]] = set()
        again = 0
        for w in self.state.writes:
            keyed = {(w.kind, p) for p in w.pairs}
            again += bool(keyed & seen)
            seen |= keyed
        return again


@pytest.fixture
def cluster(
    cli: Cli,
    sandbox_state: SandboxState,
    postgres: Postgres,
    daemons: Callable[..., tuple[subprocess.Popen[str], str]],
) -> Cluster:
    world = generate(
        sandbox_state, users=40, types=3, seed=16, today=date.today(), inactive_share=0.0
    )
    (cli.cwd / "mappings.toml").write_text(world.mapping_toml)
    sandbox_state.writes = []
    url = postgres.new_database()
    env = {
        "CERTSYNC_DATABASE_URL": url,
        "CERTSYNC_LEASE__DURATION": str(LEASE),
        "CERTSYNC_LEASE__STANDBY_POLL": str(POLL),
        "CERTSYNC_SCHEDULE__INTERVAL": "3600",  # only the first cycle of each leader
        "CERTSYNC_SCHEDULE__STOP_TIMEOUT": "10",
        "CERTSYNC_SYNC__CHUNK_SIZE": "4",
        "CERTSYNC_SYNC__LOCK_TIMEOUT": "30",
        "CERTSYNC_CLIENT__CONCURRENCY": "1",
    }

    def start(name: str) -> Replica:
        token = f"mono_replica_{name}"
        with sandbox_state.lock:
            sandbox_state.tokens["monotree"][token] = MONOTREE_SCOPES
        log = cli.cwd / f"replica-{name}.log"
        proc, base = daemons(log=log, **env, CERTSYNC_MONOTREE__TOKEN=token)
        return Replica(token, proc, base, log)

    return Cluster(sandbox_state, world, url, cli.using(env), start)


def leader_then_standby(cluster: Cluster) -> tuple[Replica, Replica]:
    """Replica a leads and applies slowly, once replica b stands by."""
    state = cluster.state
    state.script(Fault("POST /certificates/assign", "delay-after", delay=DELAY, times=999))
    with state.lock:  # a's cycles fail (and retry) until b is up: the fault is mid-apply
        state.natecosmic_body = b"<html>maintenance</html>"
    a = cluster.start("a")
    wait_for(a.leading, what="replica a leading")
    b = cluster.start("b")
    wait_for(lambda: "standing by" in b.readiness()[1], what="replica b standing by")
    with state.lock:
        state.natecosmic_body = None
    return a, b


def at_full_speed(state: SandboxState) -> None:
    with state.lock:
        state.scripted.clear()


def took_over(b: Replica, since: float, within: float) -> float:
    wait_for(b.leading, timeout=within + 5, what="replica b leading")
    return time.monotonic() - since


def figures(scenario: str, writes: int, takeover: float, cluster: Cluster) -> None:
    print(  # collected by `make reliability` into docs/reliability.md
        f"failover {scenario} after {writes} writes: takeover {takeover:.2f}s, "
        f"duplicate writes {cluster.duplicate_writes()}"
    )


@pytest.mark.parametrize(("scenario", "writes"), _points())
def test_failover(cluster: Cluster, postgres: Postgres, scenario: str, writes: int) -> None:
    a, b = leader_then_standby(cluster)
    try:
        fail_over(cluster, postgres, scenario, writes, a, b)
    except AssertionError as exc:
        tails = "".join(f"\n--- {r.log.name} ---\n{r.log.read_text()[-4000:]}" for r in (a, b))
        raise AssertionError(f"{exc}{tails}") from None


def fail_over(
    cluster: Cluster, postgres: Postgres, scenario: str, writes: int, a: Replica, b: Replica
) -> None:
    state = cluster.state
    wait_for(lambda: cluster.sent_by(a) >= writes, what=f"{writes} writes by the leader")
    faulted = time.monotonic()
    if scenario == "sigkill":
        a.proc.kill()  # left unreaped, as a dead node's process looks alive to this one
        takeover = took_over(b, faulted, within=LEASE + POLL)
        assert takeover < LEASE + 2.0, f"the standby took {takeover:.2f}s to lead"
    elif scenario == "sigterm":
        a.proc.send_signal(signal.SIGTERM)
        takeover = took_over(b, faulted, within=2.0)
        assert takeover < 2.0, f"the standby took {takeover:.2f}s to lead after a SIGTERM"
        assert a.proc.wait(timeout=15) == 0
    elif scenario == "sigstop":
        a.proc.send_signal(signal.SIGSTOP)
        takeover = took_over(b, faulted, within=2 * LEASE)
    else:
        postgres.stop()
        time.sleep(10)
        postgres.start()
        back = time.monotonic()
        wait_for(lambda: a.leading() or b.leading(), timeout=30, what="a leader again")
        takeover = time.monotonic() - back  # from PostgreSQL's return to a leader
    at_full_speed(state)
    wait_for(cluster.converged, timeout=40, what="convergence")
    if scenario != "outage":  # the fault came mid-apply: the new leader sent the rest
        assert cluster.sent_by(b) > 0

    if scenario == "sigstop":
        # The paused leader wakes up: it sends no further write and writes no row.
        wait_for(lambda: b.readiness()[0] == 200, what="the new leader ready")
        before = (
            cluster.rows("SELECT id, outcome, ended_at FROM run ORDER BY id"),
            len(cluster.rows("SELECT id FROM journal")),
        )
        woke = time.monotonic()
        a.proc.send_signal(signal.SIGCONT)
        wait_for(lambda: "standing by" in a.readiness()[1], what="the old leader standing by")
        assert cluster.sent_by(a, after=woke) == 0
        after = (
            cluster.rows("SELECT id, outcome, ended_at FROM run ORDER BY id"),
            len(cluster.rows("SELECT id FROM journal")),
        )
        assert after == before
        assert a.leading() is False and b.leading() is True
    if scenario == "outage":
        assert a.proc.poll() is None and b.proc.poll() is None  # neither crashed
        wait_for(lambda: a.readiness()[0] == 200, timeout=30, what="replica a ready")
        wait_for(lambda: b.readiness()[0] == 200, timeout=30, what="replica b ready")
        assert a.leading() != b.leading()

    assert cluster.duplicate_writes() <= 1
    # Everything either leader issued is owned: revoke one upstream and it is revoked.
    issued = {p for w in state.writes or [] if w.kind == "assign" for p in w.pairs}
    assert issued <= cluster.owned()
    index = next(
        i
        for i, r in enumerate(state.records)
        if r["user_id"] in cluster.world.user_ids
        and (
            cluster.world.template_ids[cluster.world.type_ids.index(r["certification_type_id"])],
            cluster.world.monotree_ids[cluster.world.user_ids.index(r["user_id"])],
        )
        in issued
    )
    with state.lock:
        state.records[index] = {**state.records[index], "lifecycle_status": "revoked"}
    result = cluster.cli("sync", "--format", "json", CERTSYNC_MONOTREE__TOKEN=b.token)
    assert result.returncode == 0, result.stderr[-2000:]
    assert cluster.converged()
    figures(scenario, writes, takeover, cluster)
