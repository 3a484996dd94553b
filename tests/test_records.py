"""The fast decoder makes exactly the reference decoder's records, or leaves the body to
it: it may give up, never differ."""

from __future__ import annotations

import json
from typing import Any
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st
from xxhash import xxh3_128_digest

from certsync.clients import records
from certsync.clients.conditional import Body
from certsync.clients.natecosmic import _collect, decode_pull, parse_certifications_stream
from certsync.clients.records import fast_records
from certsync.errors import ResponseFormatError
from certsync.models import Pull
from tests.test_hostile_input import FIELDS, json_values
from tests.test_natecosmic import record

# Values a careless or hostile upstream might send where dates and strings go, and
# separators inside strings where the fast decoder cuts the body.
odd_strings = st.sampled_from(
    [
        "2026-01-01",
        "2026-02-30",
        "2026-01-01T00:00:00",
        "2023-11-07T05:31:56Z",
        "2023-11-07 05:31:56Z",
        "2023-11-07T05:31:56.123456789Z",
        "2023-11-07T05:31:56+01:00",
        "2023-11-07T05:31:56",
        "",
        " ",
        'x"}, {"id": "y',
        "}, {",
        "},{",
    ]
)
field_values = odd_strings | json_values
# Mostly valid records (or the fast decoder would seldom be tried past the first).
overrides: st.SearchStrategy[dict[str, Any]] = (
    st.just({})
    | st.dictionaries(st.sampled_from(FIELDS), odd_strings, max_size=3)
    | st.dictionaries(st.sampled_from(FIELDS), field_values, max_size=2)
)
records_strategy = st.lists(overrides.map(lambda o: record(**o)), max_size=6)


def pieces(body: bytes, size: int) -> list[bytes]:
    return [body[i : i + size] for i in range(0, len(body), size)] or [b""]


def reference(body: bytes) -> Pull | None:
    try:
        return parse_certifications_stream(pieces(body, 7))
    except ResponseFormatError:
        return None


@settings(max_examples=300, deadline=None)
@given(records_strategy, st.sampled_from([1, 5, 64, 4096]), st.booleans())
def test_the_fast_decoder_never_differs_from_the_reference(
    items: list[dict[str, Any]], chunk: int, compact: bool
) -> None:
    separators = (",", ":") if compact else (", ", ": ")
    body = json.dumps({"data": items}, separators=separators).encode()
    # Segments of a few bytes: every cut the decoder can make, it makes.
    with mock.patch.object(records, "_SEGMENT", 64), mock.patch.object(records, "_LOOK_BACK", 2048):
        fast = fast_records(pieces(body, chunk), printed=True)
    if fast is not None:
        assert _collect(fast[0]) == reference(body)
        # Each record's print is that of its bytes as they were sent, in order.
        sent = [json.dumps(item, separators=separators).encode() for item in items]
        assert fast[1] == b"".join(xxh3_128_digest(one)[:12] for one in sent)


def test_a_documented_body_takes_the_fast_decoder() -> None:
    items = [record(id=f"r{i}", serial_number="}, {") for i in range(300)]
    body = json.dumps({"data": items}).encode()
    with mock.patch.object(records, "_SEGMENT", 512):
        decoded = fast_records(pieces(body, 100))
    assert decoded is not None and decoded[1] == b""  # no prints asked for
    fast = decoded[0]
    assert [r.id for r in fast] == [f"r{i}" for i in range(300)]
    assert _collect(fast) == reference(body)
    # Records share what they hold alike: one type object, one string per user.
    assert len({id(r.certification_type) for r in fast}) == 1
    assert len({id(r.user_id) for r in fast}) == 1


def test_a_record_to_reject_is_read_by_the_reference_decoder() -> None:
    """One bad record: the fast decoder gives up, and the reference one keeps the others
    and says what is wrong with that one."""
    items = [record(id="good"), record(id="bad", issued_on="2026-02-30"), record(id="ok")]
    body = json.dumps({"data": items}).encode()
    assert fast_records([body]) is None
    with Body(mock.MagicMock(), "", 0) as spooled:
        spooled.chunks = lambda: iter([body])  # type: ignore[method-assign]  # the body as read
        pull = decode_pull(spooled)
    assert [r.id for r in pull.records] == ["good", "ok"]
    assert [(r.record_id, "issued_on" in r.reason) for r in pull.rejected] == [("bad", True)]


def test_other_envelopes_are_left_to_the_reference_decoder() -> None:
    for body in (b'{"meta": {}, "data": []}', b'{"data": [], "next": null}', b"[]", b""):
        assert fast_records([body]) is None
    assert fast_records([b'{"data": []}']) == ([], b"")
    # JSON's whitespace only: a form feed between records is no JSON, for both.
    body = json.dumps({"data": [record(id="a"), record(id="b")]}).encode()
    fed = body.replace(b"}, {", b"}\x0c, {")
    assert fed != body and reference(fed) is None
    with mock.patch.object(records, "_SEGMENT", 16):
        assert fast_records(pieces(fed, 64)) is None
