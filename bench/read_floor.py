"""The read floor of a full cycle: how fast a bare client reads the same holder pages
from the same sandbox, in a process of its own.

The latency bound counts only the 20 ms the sandbox waits before each answer, as if
it then answered at once. It does not: it builds and serialises each page, one at a
time (one asyncio loop), on two cores it shares with certsync. A client that does
nothing but ask (httpx, CONCURRENCY in flight, as certsync) and `json.loads` each page
shows what of the bound no implementation reaches, as the pull floor does for the pull.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import dataclass

from certsync.clients.pagination import PER_PAGE

READS_ONLY = """
import json, os, sys, time
from concurrent.futures import ThreadPoolExecutor
import httpx
base = os.environ["CERTSYNC_MONOTREE__BASE_URL"] + "/api/open/v1"
auth = {"Authorization": "Bearer " + os.environ["CERTSYNC_MONOTREE__TOKEN"]}
asked = json.load(sys.stdin)
pages, lists, per_page, concurrency = asked["pages"], asked["lists"], asked["per_page"], asked["concurrency"]
limits = httpx.Limits(max_connections=concurrency)
with httpx.Client(base_url=base, headers=auth, limits=limits) as client:
    def read(task):
        answer = client.get(f"/certificates/{task[0]}/users", params={"page": task[1], "per_page": per_page})
        answer.raise_for_status()
        return len(json.loads(answer.content)["data"])
    started, cpu = time.perf_counter(), time.process_time()
    for page in range(1, lists + 1):
        client.get("/certificates", params={"page": page, "per_page": per_page}).raise_for_status()
    with ThreadPoolExecutor(concurrency) as pool:
        held = sum(pool.map(read, pages))
    print(time.perf_counter() - started, time.process_time() - cpu, held)
"""


@dataclass(frozen=True)
class ReadFloor:
    """Wall and CPU seconds of the bare reads: the template list's pages, then every
    page of every template's holders, all asked for at once (no page waits for the
    first)."""

    wall: float
    cpu: float
    pages: int
    holders: int


def read_floor(
    env: dict[str, str], holders: dict[int, int], templates: int, concurrency: int
) -> ReadFloor:
    """`templates` counts the whole list (ceil(T/50) pages), not only those held."""
    pages = [
        (cert, page)
        for cert, count in holders.items()
        for page in range(1, max(1, math.ceil(count / PER_PAGE)) + 1)
    ]
    out = subprocess.run(
        [sys.executable, "-c", READS_ONLY],
        # On stdin, not argv: 2,000 pages of a large tenant would crowd a command line.
        input=json.dumps(
            {
                "pages": pages,
                "lists": max(1, math.ceil(templates / PER_PAGE)),
                "per_page": PER_PAGE,
                "concurrency": concurrency,
            }
        ),
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    wall, cpu, held = out.stdout.split()
    return ReadFloor(float(wall), float(cpu), len(pages), int(held))


def show(rows: list[tuple[int, ReadFloor, float, float]]) -> None:
    """Each size's second full cycle against its floor: (records, the floor, the
    cycle's wall seconds, its latency bound)."""
    print(
        "\n## The second full cycle against its read floor: a bare httpx client reading the same\n"
        "## holder pages (4 in flight, json.loads each) from the same sandbox, in a process of its own"
    )
    print(
        f"{'records':>8} {'pages':>6} {'run s':>7} {'bound s':>8} {'floor s':>8} "
        f"{'floor/bound':>12} {'run/floor':>10} {'floor cpu/page':>15}"
    )
    for records, reads, duration, bound in rows:
        print(
            f"{records:>8} {reads.pages:>6} {duration:7.2f} {bound:8.2f} "
            f"{reads.wall:8.2f} {reads.wall / bound:12.2f} "
            f"{duration / reads.wall:10.2f} {reads.cpu / reads.pages * 1000:12.2f} ms"
        )
