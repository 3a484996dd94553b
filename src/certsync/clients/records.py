"""Natecosmic's records as they arrive, and the lean records a decision reads.

Every documented field is validated (`WireRecord`); a record keeps only the
fields a decision reads (`CertificationRecord`), and the strings many records
share (user, type, statuses) once each.

Two decoders read a pull. The fast one hands the body to msgspec's compiled
decoder a megabyte at a time, cut between two records, straight into typed
records: no tree of dicts, and never more than a segment of the body at once.
It takes only the documented envelope (`{"data": [...]}`) where every record
is valid. Anything else (a record to reject, an envelope with other keys, a
body that is not JSON) is read again by the reference decoder, record by record
with pydantic, which says what is wrong with each; both make the same records
of a valid body (tests/test_records.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import TypeVar, get_type_hints

import msgspec
from xxhash import xxh3_128_digest

from certsync import cyclic_gc
from certsync.models import CertificationRecord, CertificationType


@dataclass(frozen=True, slots=True)
class WireRecord(CertificationRecord):
    """One Natecosmic certification as documented: the fields a decision reads, and
    the rest, validated and then not kept."""

    organization_id: str | None = None
    organization_member_id: str | None = None
    external_id: str | None = None
    external_source: str | None = None
    source: str | None = None
    issuer_name: str | None = None
    serial_number: str | None = None
    verification_method: str | None = None
    last_verified_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


_KEPT_FIELDS = tuple(f.name for f in fields(CertificationRecord))

# The fields a record is validated on but does not keep, as a msgspec Struct: made in
# C, outside the cyclic collector's watch, and dropped as soon as it is checked.
_Unkept = msgspec.defstruct(
    "Unkept",
    [
        (f.name, get_type_hints(WireRecord)[f.name], f.default)
        for f in fields(WireRecord)
        if f.name not in _KEPT_FIELDS
    ],
    gc=False,
)


class Lean:
    """Makes lean records, sharing the strings, dates and types many of them hold."""

    def __init__(self) -> None:
        self._strings: dict[str, str] = {}
        self._dates: dict[date, date] = {}
        self._types: dict[tuple[str | None, ...], CertificationType] = {}

    def __call__(self, wire: WireRecord) -> CertificationRecord:
        """One record of the reference decoder's."""
        return self.share(
            [
                CertificationRecord(
                    *(getattr(wire, name) for name in _KEPT_FIELDS),
                )
            ]
        )[0]

    def type_of(self, ctype: CertificationType) -> CertificationType:
        key = (ctype.id, ctype.slug, ctype.title, ctype.status)
        return self._types.setdefault(key, ctype)

    def share(self, records: list[CertificationRecord]) -> list[CertificationRecord]:
        """Records made to share strings and types alike. They are new and nobody else
        holds them yet: set in place, as a dataclass's own `__init__` sets a frozen field
        (a third of the CPU of making the fast decoder's records anew)."""
        share, put = self._strings.setdefault, object.__setattr__
        day = self._dates.setdefault  # a few hundred days among 100,000 records: 6 MB
        for r in records:
            put(r, "user_id", share(r.user_id, r.user_id))
            put(r, "issued_on", day(r.issued_on, r.issued_on))
            if r.expires_on is not None:
                put(r, "expires_on", day(r.expires_on, r.expires_on))
            put(r, "lifecycle_status", share(r.lifecycle_status, r.lifecycle_status))
            put(r, "validity_status", share(r.validity_status, r.validity_status))
            if r.certification_type_id is not None:
                put(
                    r,
                    "certification_type_id",
                    share(r.certification_type_id, r.certification_type_id),
                )
            if r.certification_type is not None:
                put(r, "certification_type", self.type_of(r.certification_type))
            if r.verification_status is not None:
                put(r, "verification_status", share(r.verification_status, r.verification_status))
        return records


_SEGMENT = 1 << 20
# JSON's whitespace, not regex's \s (which takes \f and \v too, and would let a body
# the reference decoder refuses through).
_WS = rb"[ \t\n\r]*"
_HEAD = re.compile(_WS + rb"\{" + _WS + rb'"data"' + _WS + rb":" + _WS + rb"\[" + _WS)
_TAIL = re.compile(_WS + rb"\]" + _WS + rb"\}" + _WS + rb"\Z")
_BETWEEN = re.compile(rb"\}" + _WS + rb"," + _WS + rb"\{")
_LOOK_BACK = 1 << 16
_TRIES = 8  # cuts tried, last first, before reading on
_KEPT = msgspec.json.Decoder(list[CertificationRecord])
_CHECKED = msgspec.json.Decoder(list[_Unkept])  # type: ignore[valid-type]  # made at run time
RAWS = msgspec.json.Decoder(list[msgspec.Raw])
PRINT_SIZE = 12
T = TypeVar("T")


def decode_fast(chunks: Iterable[bytes], decode: Callable[[bytes], T]) -> Iterator[T] | None:
    """Every segment of a documented body, as `decode` makes it of the segment's records
    (`b"[" + records + b"]"`), or None: then the reference decoder reads the body
    (rejecting records, or refusing the body).

    A cut is made at a `}`, `,` and `{` in a row; one that falls inside a string or a
    nested value leaves a segment that is not a JSON array of objects, so it fails to
    decode (JSON's grammar leaves no other reading: `decode` raises `FalseCut`) and
    the cut before it is tried. Segments come one at a time."""
    stream = iter(chunks)
    pending = b""
    for chunk in stream:
        pending += chunk
        if len(pending) >= 64:
            break
    head = _HEAD.match(pending)
    if head is None:
        return None
    return _segments(pending[head.end() :], stream, decode)


class NotFast(Exception):
    """The fast decoder cannot read this body; the reference decoder will."""


class FalseCut(NotFast):
    """A segment that is not JSON: cut inside a string or a nested value (or the body
    is not JSON: then the last segment fails too)."""


def _segments(pending: bytes, stream: Iterator[bytes], decode: Callable[[bytes], T]) -> Iterator[T]:
    # The chunks are joined once a segment: adding each to the bytes before copied the
    # growing segment at every chunk, sixteen times a megabyte (a third of the cut).
    parts, size = [pending], len(pending)
    for chunk in stream:
        parts.append(chunk)
        size += len(chunk)
        if size < _SEGMENT:
            continue
        pending = b"".join(parts)
        parts = [pending]
        cuts = list(_BETWEEN.finditer(pending, max(0, len(pending) - _LOOK_BACK)))
        for cut in reversed(cuts[-_TRIES:]):
            try:
                decoded = decode(b"".join((b"[", memoryview(pending)[: cut.start() + 1], b"]")))
            except FalseCut:
                continue  # the separator was inside a string: try the one before
            yield decoded
            parts = [pending[cut.end() - 1 :]]
            size = len(parts[0])
            break
        else:
            # No cut holds yet (a long record, separators in strings): read on, but not
            # without end, or a body broken early would be decoded again at every chunk.
            if len(pending) > _SEGMENT + _TRIES * _LOOK_BACK:
                raise NotFast
    pending = b"".join(parts)
    tail = _TAIL.search(pending)
    if tail is None:
        raise NotFast
    if tail.start():
        yield decode(b"[" + pending[: tail.start()] + b"]")


def decode_segment(array: bytes) -> list[CertificationRecord]:
    """One segment's records: decoded into what is kept, and checked for the rest."""
    try:
        records = _KEPT.decode(array)
        _CHECKED.decode(array)
    except msgspec.ValidationError:
        raise NotFast from None  # a record to reject: the reference decoder says why
    except msgspec.DecodeError:
        raise FalseCut from None
    return records


def _printed(array: bytes) -> tuple[list[CertificationRecord], bytes]:
    """One segment's records, and their prints (`prints.py`), one after the other: one
    object a segment, not one a record (5 MB at 100,000)."""
    records = decode_segment(array)
    return records, b"".join(map(print_of, RAWS.decode(array)))


def print_of(raw: msgspec.Raw) -> bytes:
    """A record's fingerprint: the first 96 bits of the XXH3-128 of its bytes as
    Natecosmic sent them (the same bytes decode to the same record). Not a defence
    against forgery, which is not the threat here: Natecosmic is the source of truth
    either way. What it must do is tell a changed record from a kept one, and a 128-bit
    XXH3 spreads inputs as evenly as a cryptographic hash would for that: 1,000 changed
    records meet one of 100,000 kept prints by chance once in 10^21 cycles. It costs
    0.3 us a record here, where SHA-1 cost 1.4 us (a tenth of a 1%-changed cycle at
    100,000 records); 12 bytes, not 16, keep the snapshot (and a first cycle's peak)
    0.4 MB smaller at 100,000 records."""
    return xxh3_128_digest(raw)[:PRINT_SIZE]


def fast_records(
    chunks: Iterable[bytes], *, printed: bool = False
) -> tuple[list[CertificationRecord], bytes] | None:
    """The body's lean records by the fast decoder, or None when it cannot read it; with
    `printed`, each record's print too, in the same order (else no prints: b"")."""
    lean = Lean()
    records: list[CertificationRecord] = []
    prints: list[bytes] = []
    try:
        with cyclic_gc.paused():
            if printed:
                both = decode_fast(chunks, _printed)
                if both is None:
                    return None
                for segment, its_prints in both:
                    records += lean.share(segment)
                    prints.append(its_prints)
            else:
                wires = decode_fast(chunks, decode_segment)
                if wires is None:
                    return None
                for segment in wires:
                    records += lean.share(segment)
    except NotFast:
        return None
    return records, b"".join(prints)
