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
    """First full, second full, incremental with no change, incremental with 1% changed."""
    result = bench_size(1_000, naive=False, latency=0.0)
    names = [c.name for c in result["cycles"]]
    assert names == [
        "first full",
        "second full",
        "incremental, no change",
        "incremental, 1% changed",
    ]
    for cycle in result["cycles"]:
        bound = {k: cycle.bound[k] for k in ("natecosmic", "reads", "writes")}
        assert cycle.counts == bound, cycle.name
        assert cycle.run.doc["outcome"] == "converged", cycle.name
    quiet = result["cycles"][2]
    assert quiet.counts == {"natecosmic": 1, "reads": 1, "writes": 0}  # one request per API
    changed = result["cycles"][3]
    assert changed.run.doc["counts"]["revoke"] > 0 and changed.run.doc["counts"]["renew"] > 0
    assert changed.run.doc["counts"]["assign"] >= changed.extra["hired"]
