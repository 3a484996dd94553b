"""certsync's benchmark: requests against the lower bound, wall time against the latency
bound, the rate-limited run, CPU and memory, and a naive peer on the same data.

`make bench` runs it all (sizes 1,000, 10,000 and 100,000 records);
`python bench/run.py --sizes 1000` runs one size. The sandbox runs in this process;
certsync runs as the real command in a child process, so its CPU and peak memory are
its own. Every figure is printed beside its target, as a ratio measured in this run.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, ClassVar

from certsync.clients.pagination import PER_PAGE
from certsync.sandbox import (
    FaultConfig,
    MonotreeUser,
    Sandbox,
    SandboxState,
    World,
    generate,
    make_record,
)

sys.path.insert(0, str(Path(__file__).parent))
from daemon_quiet import quiet_in_daemon
from naive import run_naive
from read_floor import read_floor
from read_floor import show as show_read_floor

CHUNK = 500
CONCURRENCY = 4
LATENCY = 0.020
RATE_LIMIT = 600
# size -> (templates, certifications per user)
SHAPES = {1_000: (5, 2), 10_000: (10, 4), 100_000: (20, 5), 300_000: (20, 5)}
# The CPU of `main` alone is printed too: the interpreter's start and certsync's
# imports (about 0.6 s) are the same for every cycle and say nothing of its work.
WRAPPER = (
    "import sys, time; from certsync.cli.main import main; t = time.process_time(); "
    "rc = main(sys.argv[1:]); print('cpu_main', time.process_time() - t, file=sys.stderr); "
    "hwm = next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1]; "
    "print('peak_kib', hwm, file=sys.stderr); sys.exit(rc)"
)
TODAY = date.today()


@dataclass
class Run:
    """One certsync command: its report, wall time, CPU seconds and peak memory."""

    doc: dict[str, Any]
    wall: float
    cpu: float
    peak_mib: float
    code: int
    cpu_main: float = 0.0


@dataclass
class Cycle:
    name: str
    run: Run
    counts: dict[str, int]
    bound: dict[str, int]
    latency_bound: float
    extra: dict[str, Any] = field(default_factory=dict)
    # The other runs of a cycle measured more than once (`REPEATED`); this one is their
    # median by main CPU.
    others: list[Cycle] = field(default_factory=list)


def median_of(runs: list[Cycle]) -> Cycle:
    """The run of median main CPU, with the median of each pull-floor figure: the floor
    and the cycle were measured in turn, so a slow spell of the machine weighs on both."""
    ordered = sorted(runs, key=lambda c: c.run.cpu_main)
    middle = ordered[len(ordered) // 2]
    floors = [c.extra["pull_floor"] for c in runs]
    middle.extra["pull_floor"] = PullFloor(
        *(statistics.median(getattr(f, name) for f in floors) for name in PullFloor.FIELDS)
    )
    middle.extra["cpu_runs"] = [c.run.cpu_main for c in runs]
    middle.extra["floor_runs"] = [f.fetch_cpu + f.decode_cpu for f in floors]
    middle.extra["fetch_runs"] = [f.fetch_cpu for f in floors]
    middle.others = [c for c in runs if c is not middle]
    return middle


def certsync(env: dict[str, str], cwd: Path, *args: str) -> Run:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", WRAPPER, *args, "--format", "json"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode not in (0, 1, 3):
        raise SystemExit(
            f"certsync {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
        )
    peak = int(proc.stderr.rsplit("peak_kib", 1)[1].split()[0]) / 1024
    cpu_main = float(proc.stderr.rsplit("cpu_main", 1)[1].split()[0])
    return Run(json.loads(proc.stdout), wall, cpu, peak, proc.returncode, cpu_main)


PULL_ONLY = """
import hashlib, json, os, sys, time, httpx
url = os.environ["CERTSYNC_NATECOSMIC__BASE_URL"] + "/v1/certifications"
auth = {"Authorization": "Bearer " + os.environ["CERTSYNC_NATECOSMIC__TOKEN"]}
body = bytearray()
digest = hashlib.sha256()
with httpx.Client() as client:
    started, cpu = time.perf_counter(), time.process_time()
    with client.stream("GET", url, headers=auth) as answer:
        for chunk in answer.iter_raw():
            body += chunk
            digest.update(chunk)
    fetched, fetch_cpu = time.perf_counter() - started, time.process_time() - cpu
started, cpu = time.perf_counter(), time.process_time()
json.loads(body)
print(fetched, time.perf_counter() - started, fetch_cpu, time.process_time() - cpu)
"""


@dataclass(frozen=True)
class PullFloor:
    """What any cycle pays for the pull before its own work begins: the bare GET
    (body read whole and hashed, nothing else done with it) and the standard library's
    C decoder turning that body into plain dicts, the least decoding any Python client
    does. Wall seconds, and the CPU seconds of each."""

    fetch: float
    decode: float
    fetch_cpu: float = 0.0
    decode_cpu: float = 0.0

    FIELDS: ClassVar[tuple[str, ...]] = ("fetch", "decode", "fetch_cpu", "decode_cpu")

    @property
    def total(self) -> float:
        return self.fetch + self.decode


def pull_floor(env: dict[str, str]) -> PullFloor:
    """Measured in a process of its own, so certsync's imports and memory play no part."""
    out = subprocess.run(
        [sys.executable, "-c", PULL_ONLY], env=env, capture_output=True, text=True, check=True
    )
    fetch, decode, fetch_cpu, decode_cpu = (float(x) for x in out.stdout.split())
    return PullFloor(fetch, decode, fetch_cpu, decode_cpu)


def holders_per_template(state: SandboxState, templates: list[int]) -> dict[int, int]:
    with state.lock:
        return {t: len(state.holders(t)) for t in templates}


def request_counts(state: SandboxState) -> dict[str, int]:
    with state.lock:
        counts = dict(state.counts)
    return {
        "natecosmic": sum(n for k, n in counts.items() if k.startswith("natecosmic")),
        "reads": sum(n for k, n in counts.items() if k.startswith("monotree GET")),
        "writes": sum(n for k, n in counts.items() if k.startswith("monotree POST")),
    }


def lower_bound(
    doc: dict[str, Any], holders: dict[int, int] | None, templates: int
) -> dict[str, int]:
    """1 pull; every cycle the template list (a page per 50 templates), which proves the
    Monotree credentials; on full cycles a page per 50 holders of each template (an empty
    template still costs its one empty page); ceil(assigned / chunk) assigns and per
    certificate ceil(reset users / chunk) resets."""
    plan = doc["plan"]
    assigned = len(plan["assign"]) + len(plan["renew"])
    resets: dict[int, int] = {}
    for item in [*plan["renew"], *plan["revoke"]]:
        resets[item["certificate_id"]] = resets.get(item["certificate_id"], 0) + 1
    reads = max(1, math.ceil(templates / PER_PAGE))
    reads += sum(max(1, math.ceil(h / PER_PAGE)) for h in holders.values()) if holders else 0
    return {
        "natecosmic": 1,
        "reads": reads,
        "reset_requests": sum(math.ceil(n / CHUNK) for n in resets.values()),
        "assign_requests": math.ceil(assigned / CHUNK),
        "renewals": len(plan["renew"]),
        "writes": sum(math.ceil(n / CHUNK) for n in resets.values()) + math.ceil(assigned / CHUNK),
    }


def latency_bound(bound: dict[str, int], holders: dict[int, int] | None) -> float:
    """The rounds of CONCURRENCY requests that must follow one another, times LATENCY.

    Reads: the template list says which templates exist, so holder pages wait for it;
    a template's first page tells how many pages it has, so later pages wait for it
    but nothing else; the pull (another API) goes alongside the reads. Writes wait
    for the plan, so for every read; a renewal's assign waits for its reset.
    """
    read_rounds = 1  # the pull, and alongside it the template list
    if holders:
        pages = [max(1, math.ceil(h / PER_PAGE)) for h in holders.values()]
        holder_rounds = math.ceil(sum(pages) / CONCURRENCY)
        if max(pages) > 1:
            holder_rounds = max(holder_rounds, 2)
        read_rounds = 1 + holder_rounds
    writes = bound["reset_requests"] + bound["assign_requests"]
    write_rounds = math.ceil(writes / CONCURRENCY)
    if bound["reset_requests"] and bound["renewals"]:
        write_rounds = max(write_rounds, 2)
    return (read_rounds + write_rounds) * LATENCY


def write_mappings(
    folder: Path, world: World, extra_users: list[tuple[str, int]] | None = None
) -> None:
    lines = ['users_csv = "users.csv"', ""]
    for k, tid in enumerate(world.type_ids):
        lines += ["[[types]]", f'natecosmic = "{tid}"', f"monotree = {world.template_ids[k]}", ""]
    (folder / "mappings.toml").write_text("\n".join(lines))
    with (folder / "users.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["natecosmic", "monotree"])
        w.writerows(zip(world.user_ids, world.monotree_ids, strict=True))
        w.writerows(extra_users or [])


def change_one_percent(
    state: SandboxState,
    world: World,
    folder: Path,
    rng: random.Random,
    hired: list[tuple[str, int]] | None = None,
) -> dict[str, int]:
    """0.4% revoked, 0.3% renewed today, 0.3% new hires with a new certification. The
    hires of earlier changes (`hired`, added to) keep their mappings and Monotree ids."""
    hired = [] if hired is None else hired
    n = len(state.records)
    revoke, renew, hires = round(n * 0.004), round(n * 0.003), round(n * 0.003)
    with state.lock:
        live = [
            i
            for i, r in enumerate(state.records)
            if r["lifecycle_status"] == "active" and r["validity_status"] == "valid"
        ]
        picked = rng.sample(live, revoke + renew)
        for i in picked[:revoke]:
            state.records[i] = {**state.records[i], "lifecycle_status": "revoked"}
        for i in picked[revoke:]:
            state.records[i] = {
                **state.records[i],
                "issued_on": TODAY.isoformat(),
                "id": state.records[i]["id"] + "-r",
            }
        new_users = []
        for h in range(len(hired), len(hired) + hires):
            nc, mid = f"hire-{h:06d}-{rng.randrange(10**9)}", 900_000 + h
            state.add_user(MonotreeUser(mid, f"Hire {h}", f"hire{h}@example.com"))
            k = rng.randrange(len(world.type_ids))
            state.records.append(
                make_record(
                    rng,
                    user_id=nc,
                    type_id=world.type_ids[k],
                    slug=world.type_slugs[k],
                    issued_on=TODAY,
                    validity_months=12,
                )
            )
            new_users.append((nc, mid))
        state.records_changed()
    hired += new_users
    write_mappings(folder, world, hired)
    return {"revoked": revoke, "renewed": renew, "hired": hires}


QUIET_304 = "quiet, 304"
QUIET_BODY = "quiet, same body"
CHANGED = "incremental, 1% changed"
DRIFT = "drift, hand unassign"
# The cycles whose CPU is a target's numerator run three times, each beside a floor of
# its own, and the medians make the ratio: on these shared machines the same 1%-changed
# cycle, on the same data, took 1.45 to 2.05 CPU s in eight runs in a row.
REPEATED = frozenset({QUIET_304, QUIET_BODY, CHANGED})
REPEATS = 3


def unassign_by_hand(state: SandboxState) -> dict[int, int]:
    """An admin takes one certificate certsync assigned away in Monotree's app, on the
    template with the most holders; the holders of that template, which the repair reads."""
    with state.lock:
        pairs = sorted(state.api_issued_active())
        cert = max({c for c, _ in pairs}, key=lambda c: len(state.holders(c)))
        state.unassign(*next(p for p in pairs if p[0] == cert))
        return {cert: len(state.holders(cert))}


def world_of(size: int, latency: float) -> tuple[SandboxState, World]:
    """The sandbox world of one size; the same size always gives the same world."""
    types, per_user = SHAPES[size]
    state = SandboxState(rate_limit=None, faults=FaultConfig(latency=latency))
    state.cache_pull = True
    world = generate(
        state,
        users=size // per_user,
        types=types,
        seed=size,
        per_user=per_user,
        today=TODAY,
        inactive_share=0.05,
    )
    return state, world


def certsync_env(sandbox: Sandbox, folder: Path) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("CERTSYNC_")},
        **sandbox.env(),
        "CERTSYNC_DATABASE_URL": f"sqlite:///{folder / 'certsync.db'}",
        "CERTSYNC_MAPPINGS_FILE": str(folder / "mappings.toml"),
        "CERTSYNC_SECRETS_DIR": str(folder),
        "CERTSYNC_LOG_LEVEL": "warning",
        "CERTSYNC_SYNC__CHUNK_SIZE": str(CHUNK),
        "CERTSYNC_CLIENT__CONCURRENCY": str(CONCURRENCY),
    }


def bench_size(size: int, *, naive: bool, latency: float = LATENCY) -> dict[str, Any]:
    state, world = world_of(size, latency)
    rng = random.Random(size)
    cycles: list[Cycle] = []
    with tempfile.TemporaryDirectory(prefix="certsync-bench-") as tmp, Sandbox(state) as sandbox:
        folder = Path(tmp)
        write_mappings(folder, world)
        env = certsync_env(sandbox, folder)

        def measured(name: str, args: list[str], full: bool, extra: dict[str, Any]) -> Cycle:
            holders = holders_per_template(state, world.template_ids) if full else None
            if name == DRIFT:
                holders = unassign_by_hand(state)
            state.pull_body()  # serialised now, so neither the floor nor certsync waits for it
            extra["pull_floor"] = pull_floor(env)
            if name == "second full":
                assert holders is not None
                extra["read_floor"] = read_floor(env, holders, len(world.template_ids), CONCURRENCY)
                extra["holders_listed"] = sum(holders.values())
            state.reset_counts()
            run = certsync(env, folder, *args)
            bound = lower_bound(run.doc, holders, len(world.template_ids))
            return Cycle(
                name, run, request_counts(state), bound, latency_bound(bound, holders), extra
            )

        steps: list[tuple[str, list[str], bool]] = [
            ("first full", ["sync", "--full"], True),
            ("second full", ["sync", "--full"], True),
            ("incremental, no change", ["sync"], False),
            (QUIET_304, ["sync"], False),
            (QUIET_BODY, ["sync"], False),
            (CHANGED, ["sync"], False),
            (DRIFT, ["sync"], False),
        ]
        hired: list[tuple[str, int]] = []
        records = 0
        for name, args, full in steps:
            runs = []
            for attempt in range(REPEATS if name in REPEATED else 1):
                extra: dict[str, Any] = {}
                if name == CHANGED:  # a new change each time, from the converged state
                    extra = change_one_percent(state, world, folder, rng, hired)
                    # The size this benchmark names: the first change's (100,300).
                    records = records or len(state.records)
                state.etags = state.last_modified = name != QUIET_BODY
                if name == QUIET_BODY and attempt == 0:
                    certsync(env, folder, *args)  # the validators kept go: one more decision
                runs.append(measured(name, args, full, extra))
            cycles.append(median_of(runs))
        state.pull_body()
        in_daemon = quiet_in_daemon(state, env, folder)
    result: dict[str, Any] = {
        "size": size,
        "records": records or len(state.records),
        "users": len(world.user_ids),
        "templates": len(world.template_ids),
        "cycles": cycles,
        "daemon": in_daemon,
    }
    if naive:
        result["naive"] = naive_on_same_data(size)
    return result


def naive_on_same_data(size: int) -> dict[str, Any]:
    """The naive peer against a fresh sandbox holding the same world, first cycle."""
    state, world = world_of(size, LATENCY)
    mapping_types = dict(zip(world.type_ids, world.template_ids, strict=True))
    mapping_users = dict(zip(world.user_ids, world.monotree_ids, strict=True))
    with Sandbox(state) as sandbox:
        started = time.perf_counter()
        requests = run_naive(sandbox, mapping_types, mapping_users, TODAY)
        wall = time.perf_counter() - started
    return {"requests": requests, "wall": wall, "converged_pairs": len(state.active_pairs())}


def rate_limited_run() -> dict[str, Any]:
    """First full cycle at 10,000 records under a 600-a-minute limit. Monotree already
    has 65,000 holders (issued by hand, most to staff Natecosmic does not list), so the
    1,300 pages of reads alone take more than two windows of the limit."""
    types, per_user = SHAPES[10_000]
    state = SandboxState(rate_limit=RATE_LIMIT)
    state.cache_pull = True
    world = generate(
        state,
        users=10_000 // per_user,
        types=types,
        seed=7,
        per_user=per_user,
        today=TODAY,
        inactive_share=0.05,
    )
    staff = [500_000 + i for i in range(4_000)]
    for uid in staff:
        state.add_user(MonotreeUser(uid, f"Staff {uid}", f"staff{uid}@example.com"))
    for t in world.template_ids:
        for m in [*world.monotree_ids, *staff]:
            state.issue(t, m, TODAY.replace(day=1))
    with tempfile.TemporaryDirectory(prefix="certsync-bench-") as tmp, Sandbox(state) as sandbox:
        folder = Path(tmp)
        write_mappings(folder, world)
        run = certsync(certsync_env(sandbox, folder), folder, "sync", "--full")
        with state.lock:
            statuses = dict(state.statuses)
            monotree = sum(n for k, n in state.counts.items() if k.startswith("monotree"))
    too_many = statuses.get("monotree 429", 0)
    reads_seconds = run.doc["timings"].get("read_seconds", 0.0)
    return {
        "requests": monotree,
        "429": too_many,
        "wall": run.wall,
        "duration": run.doc["duration_seconds"],
        "rate": monotree / (run.doc["duration_seconds"] / 60),
        "limit": RATE_LIMIT,
        "read_seconds": reads_seconds,
        "outcome": run.doc["outcome"],
    }


def show(results: list[dict[str, Any]], limited: dict[str, Any] | None) -> None:
    print(
        "\n## Requests against the lower bound (target 1.00 every cycle; no-change incremental: 2,"
        "\n## one per API: the pull, and the template list that proves the Monotree token)"
    )
    print(
        f"{'records':>8} {'cycle':25} {'natecosmic':>10} {'reads':>11} {'writes':>11} {'total':>11} {'ratio':>6}"
    )
    for r in results:
        for c in r["cycles"]:
            total, bound = (
                sum(c.counts.values()),
                c.bound["natecosmic"] + c.bound["reads"] + c.bound["writes"],
            )
            print(
                f"{r['records']:>8} {c.name:25} {c.counts['natecosmic']:>4}/{c.bound['natecosmic']:<5} "
                f"{c.counts['reads']:>5}/{c.bound['reads']:<5} {c.counts['writes']:>5}/{c.bound['writes']:<5} "
                f"{total:>5}/{bound:<5} {total / bound:6.2f}"
            )
    print(
        "\n## Wall time against the latency bound (20 ms a request, concurrency 4; target <= 1.3)"
    )
    print(
        "pull floor: a bare GET of the pull (body read, nothing done with it) plus json.loads\n"
        "of that body, in a process of its own; where floor/bound is over 1.3 no cycle\n"
        "that reads and decodes the pull can meet the target"
    )
    print(
        f"{'records':>8} {'cycle':25} {'run s':>7} {'bound s':>8} {'ratio':>6} "
        f"{'fetch s':>8} {'decode s':>9} {'floor/bound':>11} {'process s':>10}"
    )
    for r in results:
        for c in r["cycles"]:
            duration, floor = c.run.doc["duration_seconds"], c.extra["pull_floor"]
            print(
                f"{r['records']:>8} {c.name:25} {duration:7.2f} {c.latency_bound:8.2f} "
                f"{duration / c.latency_bound:6.2f} {floor.fetch:8.3f} {floor.decode:9.3f} "
                f"{floor.total / c.latency_bound:11.2f} {c.run.wall:10.2f}"
            )
    cycles = [c for r in results for c in r["cycles"]]
    met = sum(c.run.doc["duration_seconds"] <= 1.3 * c.latency_bound for c in cycles)
    beyond = sum(c.extra["pull_floor"].total > 1.3 * c.latency_bound for c in cycles)
    print(
        f"wall-time target met in {met} of {len(cycles)} cycles; out of reach for any "
        f"implementation (floor/bound over 1.3) in {beyond}"
    )
    print("\n## Where the run's time went (seconds)")
    for r in results:
        for c in r["cycles"]:
            t = c.run.doc["timings"]
            print(
                f"{r['records']:>8} {c.name:25} "
                + " ".join(f"{k.removesuffix('_seconds')}={v:.3f}" for k, v in t.items())
            )
    print(
        "\n## CPU and memory (targets at 100,000 records: plan < 2 CPU s, run < 10 CPU s, peak < 300 MB)"
    )
    print(
        f"{'records':>8} {'cycle':25} {'plan cpu s':>10} {'run cpu s':>10} {'main cpu s':>10} {'peak MB':>8}"
    )
    for r in results:
        for c in r["cycles"]:
            print(
                f"{r['records']:>8} {c.name:25} {c.run.doc['timings'].get('plan_cpu_seconds', 0):10.3f} "
                f"{c.run.cpu:10.2f} {c.run.cpu_main:10.2f} {c.run.peak_mib * 1.048576:8.0f}"
            )
    show_targets(results)
    print(
        "\n## certsync against a naive peer (first cycle, same data; target at 10,000: >= 50x fewer requests)"
    )
    for r in results:
        if "naive" in r:
            n, first = r["naive"], r["cycles"][0]
            mine = sum(first.counts.values())
            print(
                f"{r['records']:>8} records: certsync {mine} requests in {first.run.doc['duration_seconds']:.2f} s, "
                f"naive {n['requests']} requests in {n['wall']:.2f} s; "
                f"requests {mine / n['requests']:.4f} (1/{n['requests'] / mine:.0f}), wall {first.run.doc['duration_seconds'] / n['wall']:.4f}"
            )
    if limited:
        print(
            "\n## Rate-limited run (600 a minute, 10,000 records, 65,000 existing holders; targets: 0 x 429, >= 0.90 of the rate)"
        )
        print(
            f"{limited['requests']} Monotree requests in {limited['duration']:.1f} s: {limited['429']} x 429; "
            f"sustained {limited['rate']:.0f} a minute = {limited['rate'] / 600:.2f} of the limit ({limited['outcome']})"
        )


def show_targets(results: list[dict[str, Any]]) -> None:
    """The second performance round's figures, each a ratio measured in this run."""
    print(
        "\n## Quiet, changed and drift cycles (CPU of certsync's `main`, after its imports;\n"
        "## floor: a bare GET with the body read and hashed, then json.loads, in a process of its own)"
    )
    print(
        f"{'records':>8} {'304/fetch':>10} {'same/fetch':>11} {'daemon 304':>11} {'daemon same':>12} "
        f"{'1%/floor':>9} {'2nd full/bound':>15} "
        f"{'drift requests':>15} {'drift s':>8} {'peak MB':>8} {'1% cpu/record':>14}"
    )
    per_record: dict[int, float] = {}
    for r in results:
        by = {c.name: c for c in r["cycles"]}
        fetch = by[QUIET_BODY].extra["pull_floor"].fetch_cpu
        changed = by[CHANGED]
        floor = changed.extra["pull_floor"]
        second, drift = by["second full"], by[DRIFT]
        drift_total = sum(drift.counts.values())
        drift_bound = drift.bound["natecosmic"] + drift.bound["reads"] + drift.bound["writes"]
        peak = max(x.run.peak_mib for c in r["cycles"] for x in [c, *c.others]) * 1.048576
        per_record[r["records"]] = changed.run.cpu_main / r["records"] * 1e6
        print(
            f"{r['records']:>8} "
            f"{by[QUIET_304].run.cpu_main / by[QUIET_304].extra['pull_floor'].fetch_cpu:10.2f} "
            f"{by[QUIET_BODY].run.cpu_main / fetch:11.2f} "
            f"{r['daemon'].cpu_304 / fetch:11.2f} {r['daemon'].cpu_same_body / fetch:12.2f} "
            f"{changed.run.cpu_main / (floor.fetch_cpu + floor.decode_cpu):9.2f} "
            f"{second.run.doc['duration_seconds'] / second.latency_bound:15.2f} "
            f"{drift_total:>7}/{drift_bound:<7} {drift.run.doc['duration_seconds']:8.2f} "
            f"{peak:8.0f} {per_record[r['records']]:11.1f} us"
        )
    print(
        "targets at 100,300: quiet/fetch <= 1.5, 1%/floor <= 1.5, 2nd full/bound <= 1.2, "
        "drift requests 1.00 of the bound, peak <= 150 MB\n"
        "daemon 304, daemon same: a quiet cycle's CPU in `certsync run` (the process's, all its "
        "threads; median of 3) over the fetch's\n"
        f"304, same, 1%: the median of {REPEATS} runs over the median of their {REPEATS} floors; "
        "each run, main CPU s / its floor's CPU s (the fetch's for the quiet ones):"
    )
    for r in results:
        by = {c.name: c for c in r["cycles"]}
        shown = []
        for name, floors in (
            (QUIET_304, "fetch_runs"),
            (QUIET_BODY, "fetch_runs"),
            (CHANGED, "floor_runs"),
        ):
            c = by[name]
            runs = zip(c.extra["cpu_runs"], c.extra[floors], strict=True)
            pairs = " ".join(f"{a:.2f}/{b:.2f}" for a, b in runs)
            shown.append(f"{name.split(',')[-1].strip()} {pairs}")
        print(f"{r['records']:>8}  " + "; ".join(shown))
    show_read_floor(
        [
            (r["records"], c.extra["read_floor"], c.run.doc["duration_seconds"], c.latency_bound)
            for r in results
            for c in r["cycles"]
            if c.name == "second full"
        ]
    )
    big = sorted(per_record)
    if len(big) >= 2 and big[-2] >= 100_000:
        print(
            f"CPU per record at {big[-1]:,} against {big[-2]:,} (1% changed; target <= 1.2): "
            f"{per_record[big[-1]] / per_record[big[-2]]:.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,10000,100000,300000")
    parser.add_argument("--naive-sizes", default="1000,10000")
    parser.add_argument("--no-rate-limited", action="store_true")
    parser.add_argument("--only-rate-limited", action="store_true")
    args = parser.parse_args()
    started = time.perf_counter()
    sizes = [] if args.only_rate_limited else [int(s) for s in args.sizes.split(",") if s]
    naive_sizes = {int(s) for s in args.naive_sizes.split(",") if s}
    results = []
    for size in sizes:
        print(f"benchmarking {size} records ...", flush=True)
        results.append(bench_size(size, naive=size in naive_sizes))
    limited = None if args.no_rate_limited else rate_limited_run()
    show(results, limited)
    print(f"\nbenchmark took {time.perf_counter() - started:.0f} s on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
