"""A pull read against the kept one (only the records whose bytes changed decoded) is the
pull decoded whole: the same records in the same order, the same snapshot kept after it,
and the same account of what changed. What it cannot read that way, it leaves to the
whole decoder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from certsync.clients.natecosmic import decode_pull
from certsync.clients.prints import scan
from certsync.clients.records import PRINT_SIZE
from certsync.models import Pull
from certsync.rows import KeptRecords, records_of
from certsync.store import Store
from certsync.store.known import merged
from tests.test_natecosmic import record
from tests.test_records import pieces

USERS = ["u1", "u2", "u3"]
one = st.builds(
    lambda n, user, life, issued, serial: record(
        id=f"r{n}",
        user_id=user,
        lifecycle_status=life,
        issued_on=issued,
        serial_number=serial,
    ),
    st.integers(0, 30),
    st.sampled_from(USERS),
    st.sampled_from(["active", "revoked"]),
    st.sampled_from(["2026-01-01", "2026-03-01"]),
    st.sampled_from(["S1", "S2"]),  # a field the decision does not read
)
pulls = st.lists(one, max_size=12, unique_by=lambda r: r["id"])


def body_of(items: list[dict[str, Any]]) -> bytes:
    return json.dumps({"data": items}).encode()


class _Spooled:
    """A body as `decode_pull` reads it."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def chunks(self) -> list[bytes]:
        return pieces(self._body, 50)


def whole(body: bytes) -> Pull:
    return decode_pull(_Spooled(body), printed=True)  # type: ignore[arg-type]  # reads chunks() alone


# No shrinking: each example makes two SQLite stores, and a failure prints its example.
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(pulls, pulls, st.data())
def test_a_pull_read_against_the_kept_one_is_the_pull_decoded_whole(
    tmp_path: Path, before: list[dict[str, Any]], extra: list[dict[str, Any]], data: st.DataObject
) -> None:
    # The next pull: some records kept as they were, some dropped, some new or changed.
    kept_items = [r for r in before if data.draw(st.booleans())]
    ids = {r["id"] for r in kept_items}
    after = kept_items + [r for r in extra if r["id"] not in ids]
    after = data.draw(st.permutations(after))
    assume(before)  # an empty pull keeps no prints: the next is decoded whole
    store = Store(f"sqlite:///{tmp_path / f'k{len(list(tmp_path.iterdir()))}.db'}")
    try:
        first = whole(body_of(before))
        store.snapshots.save(first.records, prints=first.prints)
        known = store.snapshots.known()
        assert known is not None
        scanned = scan(pieces(body_of(after), 50), known.by_print())
        assert scanned is not None
        # Only what is not byte for byte a kept record is decoded.
        assert len(scanned.fresh) == sum(1 for r in after if r not in before)
        made = merged(known, scanned.kept, scanned.fresh)
        again = whole(body_of(after))
        assert isinstance(made.records, KeptRecords)
        assert records_of(made.records, {"u1"}) == [r for r in again.records if r.user_id == "u1"]
        assert tuple(made.records) == again.records and scanned.prints == again.prints
        # The account of what changed, and the snapshot after, as a whole save makes them.
        old = {r.id: r for r in first.records}
        new = {r.id: r for r in again.records}
        moved = {
            r.user_id
            for rid in old.keys() | new.keys()
            if old.get(rid) != new.get(rid)
            for r in (old.get(rid), new.get(rid))
            if r is not None
        }
        assert made.delta.users is not None and set(made.delta.users) == moved
        store.snapshots.save_rows(made.kinds, made.rows, prints=scanned.prints)
        by_rows = store.snapshots.load()
        assert by_rows is not None and (store.snapshots.known() is not None or not after)
        other = Store(f"sqlite:///{tmp_path / f'w{len(list(tmp_path.iterdir()))}.db'}")
        try:
            other.snapshots.save(first.records, prints=first.prints)
            assert made.delta == other.snapshots.save(again.records, prints=again.prints)
            by_records = other.snapshots.load()
        finally:
            other.close()
        assert by_records is not None and by_rows.records == by_records.records
    finally:
        store.close()


def test_a_record_id_twice_or_a_bad_record_is_left_to_the_whole_decoder() -> None:
    first = whole(body_of([record(id="a"), record(id="b", user_id="u2")]))
    by_print = {first.prints[:PRINT_SIZE]: "a", first.prints[PRINT_SIZE:]: "b"}
    twice = body_of(
        [record(id="a"), record(id="b", user_id="u2"), record(id="a", serial_number="x")]
    )
    assert scan([twice], by_print) is None
    bad = body_of([record(id="a"), record(id="c", issued_on="2026-02-30")])
    assert scan([bad], by_print) is None
    blank = body_of([record(id="a"), record(id=" ")])
    assert scan([blank], by_print) is None
    assert scan([b'{"data": [], "next": null}'], by_print) is None
    fine = scan([body_of([record(id="b", user_id="u2"), record(id="d")])], by_print)
    assert fine is not None and fine.kept == ["b", None] and [r.id for r in fine.fresh] == ["d"]
