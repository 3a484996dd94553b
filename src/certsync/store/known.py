"""A pull made of the kept one and the records that changed (`clients/prints.py`): the
records a decision reads, the snapshot's rows for it, and what changed, with no record
decoded twice and no row compared twice."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from certsync import cyclic_gc
from certsync.models import CertificationRecord
from certsync.rows import KeptRecords, Kind, Records, Row, kind_of
from certsync.store.snapshot import KnownRows, PullDelta


@dataclass(frozen=True, slots=True)
class Merged:
    records: KeptRecords
    kinds: list[Kind]
    rows: dict[str, Row]  # in the records' order
    delta: PullDelta


def merged(
    known: KnownRows, kept: Sequence[str | None], fresh: Sequence[CertificationRecord]
) -> Merged:
    """The pull whose records are, in order, the kept ones `kept` names and the `fresh`
    ones where it names none. A kept record is made from its row when first read."""
    kinds = list(known.kinds)
    number = {kind: i for i, kind in enumerate(kinds)}
    make = Records(kinds)
    old = known.rows
    rows: dict[str, Row] = {}
    fresh_at = iter(fresh)
    with cyclic_gc.paused():
        for rid in kept:
            if rid is not None:
                rows[rid] = old[rid]
                continue
            record = next(fresh_at)
            kind = kind_of(record)
            k = number.get(kind)
            if k is None:
                k = number[kind] = len(kinds)
                kinds.append(kind)
                make.add_kind(kind)
            rows[record.id] = (record.user_id, k, record.issued_on, record.expires_on)
    records = KeptRecords(make, rows, {r.id: r for r in fresh})
    return Merged(records, kinds, rows, _delta(known, fresh, rows))


def _delta(
    known: KnownRows, fresh: Sequence[CertificationRecord], rows: dict[str, Row]
) -> PullDelta:
    old = known.rows
    users: set[str] = set()
    added = changed = 0
    for record in fresh:
        was = old.get(record.id)
        if was is None:
            added += 1
            users.add(record.user_id)
        elif was != rows[record.id]:
            changed += 1
            users.update((was[0], record.user_id))
    gone = [row for rid, row in old.items() if rid not in rows]
    users.update(row[0] for row in gone)
    return PullDelta(added, len(gone), changed, frozenset(users), known.made_from)
