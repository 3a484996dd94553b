"""Ownership as pairs grouped by certificate reads exactly as a set of pairs."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from certsync.models import Pair
from certsync.pairs import Pairs

pairs = st.frozensets(st.tuples(st.integers(0, 5), st.integers(0, 30)), max_size=60)
probes = st.lists(st.tuples(st.integers(-1, 6), st.integers(-1, 31)), max_size=20)


@given(pairs, pairs, probes)
def test_pairs_read_as_the_set_of_tuples_they_hold(
    held: frozenset[Pair], other: frozenset[Pair], asked: list[Pair]
) -> None:
    grouped = Pairs.of(held)
    assert len(grouped) == len(held) and set(grouped) == held
    as_set: object = held  # a Pairs equals the plain set of its pairs
    assert grouped == as_set and hash(grouped) == hash(held)
    assert all((p in grouped) == (p in held) for p in [*asked, *other])
    assert (grouped & other) == (held & other) and (grouped | other) == (held | other)
    assert (grouped - other) == (held - other)
    for cert in range(7):
        assert grouped.users_of(cert) == {u for c, u in held if c == cert}


def test_what_is_not_a_pair_is_not_in_them() -> None:
    grouped = Pairs.of([(1, 2)])
    assert (1, 2) in grouped
    others: list[object] = [[1, 2], (1, 2, 3), 1, None]
    assert not any(other in grouped for other in others)
    assert len(Pairs()) == 0 and not Pairs({3: set()})
