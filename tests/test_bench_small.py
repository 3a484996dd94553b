"""The benchmark's small version: at 1,000 records every cycle costs exactly its lower bound.

Counts, not times: the timed figures live in `make bench`, never in the suite.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "bench"))

from run import bench_size

pytestmark = pytest.mark.e2e


def test_every_cycle_meets_the_request_lower_bound_at_1000_records() -> None:
    """Full cycles, quiet ones (a 304, the same body), 1% changed, and a hand unassign."""
    result = bench_size(1_000, naive=False, latency=0.0)
    names = [c.name for c in result["cycles"]]
    assert names == [
        "first full",
        "second full",
        "incremental, no change",
        "quiet, 304",
        "quiet, same body",
        "incremental, 1% changed",
        "drift, hand unassign",
    ]
    # The cycles measured three times (the ratios' numerators), every run of them too.
    repeated = {c.name: len(c.others) for c in result["cycles"] if c.others}
    assert repeated == {"quiet, 304": 2, "quiet, same body": 2, "incremental, 1% changed": 2}
    for cycle in [x for c in result["cycles"] for x in [c, *c.others]]:
        bound = {k: cycle.bound[k] for k in ("natecosmic", "reads", "writes")}
        assert cycle.counts == bound, cycle.name
        assert cycle.run.doc["outcome"] == "converged", cycle.name
    quiet = result["cycles"][2]
    assert quiet.counts == {"natecosmic": 1, "reads": 1, "writes": 0}  # one request per API
    for quiet in [x for c in result["cycles"][3:5] for x in [c, *c.others]]:
        # Nothing changed: nothing decoded, no plan made.
        assert quiet.counts == {"natecosmic": 1, "reads": 1, "writes": 0}, quiet.name
        assert quiet.run.doc["unchanged_since"] is not None, quiet.name
    for changed in [result["cycles"][5], *result["cycles"][5].others]:
        # Each run a change of its own: the hires before it keep their certificates.
        counts = changed.run.doc["counts"]
        assert 0 < counts["revoke"] <= changed.extra["revoked"] and counts["renew"] > 0, counts
        assert counts["assign"] >= changed.extra["hired"], counts
    drift = result["cycles"][6]  # a hand unassign: that template read, the holding restored
    assert len(drift.run.doc["templates_read"]) == 1 and drift.run.doc["counts"]["assign"] == 1
    # The bare client read every holder page the bound counts, and saw every holder.
    second = result["cycles"][1]
    reads = second.extra["read_floor"]
    assert reads.pages == second.bound["reads"] - 1  # the template list is the other read
    assert reads.holders == second.extra["holders_listed"] > 0
    # The daemon's quiet cycles were measured (a cycle that decided would have ended the
    # benchmark), the one with a 304 costing no more than the one that reads the body.
    daemon = result["daemon"]
    assert 0 <= daemon.cpu_304 <= daemon.cpu_same_body + 0.05
