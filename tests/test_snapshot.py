"""The pull snapshot: what changed since the last pull, the records it gives back, the
body it stands for, and snapshots this release does not read (earlier ones, damaged)."""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
import zlib
from dataclasses import replace
from datetime import date
from pathlib import Path

import msgspec
import pytest
from alembic import command
from sqlalchemy import text

from certsync.models import CertificationRecord, CertificationType, RejectedRecord
from certsync.store import MadeFrom, PullDelta, Store, schema, snapshot, snapshot_rows


def test_the_kept_pull_carries_what_it_was_made_from_and_its_rejected_records(
    store: Store,
) -> None:
    """The snapshot stands for the body it was made from (origin, release, digest and
    validators), saved in the same transaction, with the records that body rejected. A
    snapshot rewritten by a release that does not know this is no longer vouched for."""
    record = CertificationRecord(
        id="r1",
        user_id="u1",
        issued_on=date(2026, 1, 2),
        lifecycle_status="active",
        validity_status="valid",
        certification_type_id="t1",
    )
    refused = RejectedRecord(3, "broken", "issued_on: not a date")
    source = "https://127.0.0.1:8001"
    made = MadeFrom(source, "ab" * 32, '"v1"', "Tue, 01 Dec 2026 08:00:00 GMT")
    store.snapshots.save([record], [refused], made_from=made)
    assert store.snapshots.made_from() == made
    assert made.same_parser(source) and not made.same_parser("https://127.0.0.1:8002")
    kept = store.snapshots.load()
    assert kept is not None and kept.rejected == (refused,) and kept.made_from == made
    assert [r.id for r in kept.records] == ["r1"]
    # Made by another release: its parse may differ, so it stands for no body of ours.
    assert not replace(made, version="0.0.1").same_parser(source)
    # Any other writer writes its own time, even with the very same document.
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE pull_snapshot SET pulled_at = '2026-01-02 03:04:05.000006'"))
    assert store.snapshots.made_from() is None
    store.snapshots.save([record], [refused], made_from=made)
    assert store.snapshots.made_from() == made
    # An older release rewrites the document (at its own time, as every save writes)
    # and leaves the stored value behind.
    with store.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE pull_snapshot SET document = :b, pulled_at = '2026-01-03 00:00:00.000001'"
            ),
            {"b": _earlier_release_document({"format": 2, "types": [], "rows": {}})},
        )
    assert store.snapshots.made_from() is None
    store.snapshots.save([record])
    assert store.snapshots.made_from() is None
    kept = store.snapshots.load()
    assert kept is not None and kept.made_from is None


def test_pull_snapshot_says_what_changed(store: Store) -> None:
    """The pull snapshot tells how many records were added, removed or changed since the last pull."""

    def r(rid: str, day: int) -> CertificationRecord:
        return CertificationRecord(rid, "u", date(2026, 1, day), "active", "valid", "t")

    assert store.snapshots.save([r("a", 1), r("b", 1)]).added is None
    delta = store.snapshots.save([r("a", 2), r("c", 1)])
    assert (delta.added, delta.removed, delta.changed) == (1, 1, 1)
    # What records share (statuses, type) is kept once and numbered as met: a new kind
    # met first renumbers the others, and an unchanged record is still unchanged.
    revoked = replace(r("d", 1), lifecycle_status="revoked", certification_type_id="t2")
    assert store.snapshots.save([revoked, r("a", 2), r("c", 1)]) == PullDelta(1, 0, 0)
    assert store.snapshots.save([r("a", 2), r("c", 3)]) == PullDelta(0, 1, 1)


def _earlier_release_document(document: object) -> bytes:
    """A snapshot's document as releases before format 3 wrote it (zlib'd JSON)."""
    return zlib.compress(json.dumps(document).encode(), 6)


def _another_format(document: object) -> bytes:
    """A document in this release's encoding (msgpack) but another format number, as a
    release after it, or before this one's layout, may write."""
    return msgspec.msgpack.encode(document)


@pytest.mark.parametrize(
    "body",
    [
        # a digest per record
        _earlier_release_document({"a": "0123456789abcdef", "gone": "0123456789abcdef"}),
        _earlier_release_document({"format": 2, "types": [["t", None, None, None, None]]}),
        _another_format({"format": 3, "kinds": [], "rows": [], "rejected": [], "made_from": None}),
        # prints by SHA-1, which no longer name the same records
        _another_format({"format": 5, "kinds": [], "rows": [], "rejected": [], "made_from": None}),
        _another_format({"format": 99, "kinds": [], "rows": [], "rejected": [], "made_from": None}),
    ],
    ids=["digests", "format-2", "msgpack-format-3", "msgpack-format-5", "msgpack-format-99"],
)
def test_a_snapshot_kept_by_an_earlier_release_is_replaced_not_misread(
    tmp_path: Path, body: bytes
) -> None:
    """After an upgrade the kept pull is not read as records, nor compared: the first
    pull says nothing of what changed (rather than something wrong), the next does."""
    path = tmp_path / "s.db"
    store = Store(f"sqlite:///{path}")
    record = CertificationRecord("a", "u", date(2026, 1, 1), "active", "valid", "t")
    store.snapshots.save([record], made_from=MadeFrom("https://127.0.0.1:8001", "ab" * 32, '"1"'))
    con = sqlite3.connect(path)
    con.execute("UPDATE pull_snapshot SET document = ?", (body,))
    # As that release wrote it: the digest of its document beside the body it was made
    # from. Its validators are not sent: a 304 would leave nothing to decide from.
    digest = hashlib.sha256(body).hexdigest()
    con.execute("UPDATE setting SET value = ? WHERE key = 'pull_document'", (digest,))
    con.commit()
    con.close()
    assert store.snapshots.made_from() is None
    assert store.snapshots.load() is None
    other = CertificationRecord("b", "u", date(2026, 1, 1), "active", "valid", "t")
    assert store.snapshots.save([record, other]) == PullDelta(None, None, None)
    assert store.snapshots.save([other]) == PullDelta(0, 1, 0)


def test_a_damaged_snapshot_is_neither_loaded_nor_compared(tmp_path: Path) -> None:
    """A chunk of rows that does not decode: no records from it (a sync of some people
    pulls afresh) and no count of what changed, rather than a traceback."""
    path = tmp_path / "s.db"
    store = Store(f"sqlite:///{path}")
    record = CertificationRecord("a", "u", date(2026, 1, 1), "active", "valid", "t")
    store.snapshots.save([record])
    empty = snapshot_rows.Tables([], [])
    damaged = msgspec.msgpack.encode(
        snapshot._Document(snapshot._FORMAT, [], empty, [b"not a chunk"], [], None, b"p" * 12)
    )
    con = sqlite3.connect(path)
    con.execute("UPDATE pull_snapshot SET document = ?", (damaged,))
    con.commit()
    con.close()
    assert store.snapshots.load() is None
    assert store.snapshots.save([record]) == PullDelta(None, None, None)
    assert store.snapshots.save([record]) == PullDelta(0, 0, 0)


def test_the_kept_pull_gives_back_every_field_a_decision_reads(store: Store) -> None:
    ctype = CertificationType(id="uuid-food", slug="food-safety", title="Food Safety")
    records = [
        CertificationRecord(
            "a",
            "nc-ann",
            date(2026, 1, 1),
            "active",
            "valid",
            "uuid-food",
            ctype,
            date(2027, 1, 1),
            "verified",
        ),
        CertificationRecord("b", "nc-bob", date(2026, 2, 1), "revoked", "expired"),
    ]
    assert store.snapshots.load() is None
    store.snapshots.save(records)
    kept = store.snapshots.load()
    assert kept is not None and kept.records == tuple(records)
    assert store.snapshots.save(records).changed == 0
    revoked = replace(records[0], lifecycle_status="revoked")
    assert store.snapshots.save([revoked, records[1]]).changed == 1


def test_a_row_naming_no_user_or_day_is_unreadable_not_a_traceback(tmp_path: Path) -> None:
    """A chunk whose numbers point past the tables (or whose columns differ in length)
    makes the snapshot unread, as a damaged one, rather than rows with the wrong user."""
    path = tmp_path / "s.db"
    store = Store(f"sqlite:///{path}")
    record = CertificationRecord("a", "u", date(2026, 1, 1), "active", "valid", "t")
    store.snapshots.save([record])
    kept = store.snapshots.load()
    assert kept is not None and kept.records == (record,)
    saved = store.snapshots._kept_document()
    assert saved is not None and saved[1] is not None
    kinds = saved[1].kinds
    tables = snapshot_rows.Tables(["u"], [date(2026, 1, 1), None])

    def loaded(ids: list[str], user: int, issued: int, expires: int) -> object:
        chunk = snapshot_rows._Chunk(ids, [user], [0], [issued], [expires])
        document = snapshot._Document(
            snapshot._FORMAT, kinds, tables, [msgspec.msgpack.encode(chunk)], [], None
        )
        con = sqlite3.connect(path)
        con.execute("UPDATE pull_snapshot SET document = ?", (msgspec.msgpack.encode(document),))
        con.commit()
        con.close()
        kept = store.snapshots.load()
        return None if kept is None else kept.records

    assert loaded(["a"], 0, 0, 1) == (record,)
    assert loaded(["a"], 1, 0, 1) is None  # no second user
    assert loaded(["a"], 0, 0, 2) is None  # no third day
    assert loaded(["a", "b"], 0, 0, 1) is None  # a column short of the ids


def test_the_kept_pull_crosses_revision_0016_both_ways(store_url: str) -> None:
    """0016 keeps the document as bytes: going down it is base64 text again, byte for
    byte, and coming back up the same pull is kept, still vouched for by its body."""
    store = Store(store_url)
    record = CertificationRecord("a", "u", date(2026, 1, 1), "active", "valid", "t")
    made = MadeFrom("https://127.0.0.1:8001", "ab" * 32, '"1"')
    store.snapshots.save([record], made_from=made)
    with store.engine.begin() as conn:
        document = conn.execute(text("SELECT document FROM pull_snapshot")).scalar_one()
        command.downgrade(schema._config(conn), "0015")
        body = conn.execute(text("SELECT body FROM pull_snapshot")).scalar_one()
    store.close()
    assert base64.b64decode(body) == bytes(document)
    again = Store(store_url)
    assert again.upgrade() is not None
    kept = again.snapshots.load()
    assert kept is not None and kept.records == (record,)
    assert again.snapshots.made_from() == made
    again.close()
