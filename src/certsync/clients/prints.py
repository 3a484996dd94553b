"""A pull read against the one kept before it, without decoding what did not change.

Each record's print (`records.print_of`, of its bytes as sent) is looked up among the
kept pull's prints: a print found names a kept record, for the same bytes decode to the
same record; only the records whose print is new are decoded, and validated as the fast
decoder validates every record. Anything the fast decoder would not read (another
envelope, a record to reject, a record id twice) leaves the body to be decoded whole.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import msgspec

from certsync import cyclic_gc
from certsync.clients.records import (
    RAWS,
    FalseCut,
    Lean,
    NotFast,
    decode_fast,
    decode_segment,
    print_of,
)
from certsync.models import CertificationRecord


@dataclass(frozen=True, slots=True)
class Scanned:
    """A body's records against the kept ones: for each, in the body's order, the kept
    record its print names (None: a new print), every print, and the new ones decoded."""

    kept: list[str | None]
    prints: bytes
    fresh: list[CertificationRecord]


def scan(chunks: Iterable[bytes], known: Mapping[bytes, str]) -> Scanned | None:
    """The body read against `known` (print -> kept record id); None when the fast
    decoder would not read it, or a record id comes twice."""
    kept: list[str | None] = []
    prints: list[bytes] = []
    new: list[bytes] = []

    def segment(array: bytes) -> None:
        try:
            raws = RAWS.decode(array)
        except msgspec.DecodeError:
            raise FalseCut from None
        found = list(map(print_of, raws))
        named = list(map(known.get, found))
        prints.append(b"".join(found))  # one object a segment, not one a record
        kept.extend(named)
        new.extend(bytes(raw) for raw, rid in zip(raws, named, strict=True) if rid is None)

    segments = decode_fast(chunks, segment)
    if segments is None:
        return None
    try:
        with cyclic_gc.paused():
            for _ in segments:
                pass
            fresh = Lean().share(decode_segment(b"[" + b",".join(new) + b"]")) if new else []
    except NotFast:
        return None
    # What the fast decoder's caller checks of every record (`natecosmic._checked`) and
    # of the whole (no id twice): else the reference decoder says what is wrong.
    if any(not (r.id.strip() and r.user_id.strip() and r.type_keys()) for r in fresh):
        return None
    ids = [r.id for r in fresh]
    ids += [rid for rid in kept if rid is not None]
    if len(set(ids)) != len(ids):
        return None
    return Scanned(kept, b"".join(prints), fresh)
