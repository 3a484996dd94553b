"""The last pull, kept compact: what changed upstream since the cycle before, and the
records themselves for `explain --from-snapshot` and a sync of some people (no request
to Natecosmic).

Each record is kept as the fields a decision reads. What many records share (the three
statuses and the type) is kept once, as a "kind"; a row is the record's user, its kind
and its two dates, kept as columns (`snapshot_rows.py`). The document is msgpack
(msgspec, in C both ways). A snapshot of an earlier release is not read: the next pull
replaces it, and that one cycle cannot say what changed since the pull before.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import msgspec
from sqlalchemy import Connection, delete, insert, select

from certsync import cyclic_gc
from certsync.models import CertificationRecord, Pull, RejectedRecord
from certsync.rows import Kind, Records, Row, kind_of
from certsync.store.db import Db, table_of
from certsync.store.lock import utcnow
from certsync.store.made_from import MadeFrom
from certsync.store.snapshot_rows import Tables, decoded, encoded
from certsync.store.tables import PullSnapshotRow
from certsync.store.values import get_value, set_value

_P = table_of(PullSnapshotRow)
_FORMAT = 6  # 6: prints by XXH3-128 (5: by SHA-1)
# Which body the snapshot was made from (`MadeFrom`), kept in the same transaction as
# the snapshot: a 304 to its validators, or a body with its digest, *is* that snapshot.
_MADE_FROM = "pull_made_from"
# Which document this release wrote (`_written`): a release before `MadeFrom` rewrites
# the document and leaves the value above behind, stale.
_DOCUMENT = "pull_document"
# When a pull last found the kept one unchanged (`touch`).
_FRESH = "pull_fresh_at"


class _Document(msgspec.Struct, frozen=True):
    format: int
    kinds: list[Kind]
    tables: Tables
    # Chunks of rows (`snapshot_rows.py`), each encoded on its own: the pull before is
    # compared (and loaded) a chunk at a time, never held whole as rows.
    rows: list[bytes]
    rejected: list[tuple[int, str | None, str]]
    made_from: str | None
    # Each record's print (`clients/records.print_of`), in the rows' order, 12 bytes
    # each; empty when not known (the pull had a record rejected, or was read from a
    # snapshot): a cycle then decodes the next pull whole.
    prints: bytes = b""


class _Format(msgspec.Struct):
    format: int = 0


PRINT_SIZE = 12  # `clients/records.PRINT_SIZE`: the store does not import the clients
_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(_Document)
# A damaged chunk, or a kind, user or date number out of range: the snapshot is not read.
_UNREADABLE = (msgspec.DecodeError, IndexError)
_FORMAT_ONLY = msgspec.msgpack.Decoder(_Format)


@dataclass(frozen=True, slots=True)
class PullDelta:
    """How the latest pull differs from the one before (None counts: no earlier pull).
    `users`: the Natecosmic users of every record added, removed or changed (before and
    after), and `since`: the body the pull before was made from (`MadeFrom.dumps`)."""

    added: int | None
    removed: int | None
    changed: int | None
    users: frozenset[str] | None = field(default=None, compare=False, repr=False)
    since: str | None = field(default=None, compare=False, repr=False)

    def counts(self) -> dict[str, int | None]:
        return {"added": self.added, "removed": self.removed, "changed": self.changed}


@dataclass(frozen=True, slots=True)
class KeptPull:
    pulled_at: datetime
    records: tuple[CertificationRecord, ...]
    rejected: tuple[RejectedRecord, ...] = ()
    made_from: MadeFrom | None = None  # as the snapshot itself says


def _compact(records: Sequence[CertificationRecord]) -> tuple[list[Kind], dict[str, Row]]:
    # The decoders share each status string and type object among the records that
    # hold it, so their identities (not their values, whose hashes are computed in
    # Python for a dataclass) find a record's kind: a fifth of the CPU at 100,000.
    # A sequence, not any iterable: every record stays alive through the loop, so no
    # identity is reused for another object while `seen` remembers it.
    seen: dict[tuple[int, int, int, int, int], int] = {}
    kinds: dict[Kind, int] = {}
    rows: dict[str, Row] = {}
    for r in records:
        ct = r.certification_type
        key = (
            id(r.lifecycle_status),
            id(r.validity_status),
            id(r.verification_status),
            id(r.certification_type_id),
            id(ct),
        )
        index = seen.get(key)
        if index is None:
            index = seen[key] = kinds.setdefault(kind_of(r), len(kinds))
        rows[r.id] = (r.user_id, index, r.issued_on, r.expires_on)
    return list(kinds), rows


def _read(raw: bytes) -> _Document | None:
    """The document, or None when an earlier release wrote it (or it is unreadable)."""
    try:
        if _FORMAT_ONLY.decode(raw).format != _FORMAT:
            return None
        return _DECODER.decode(raw)
    except msgspec.DecodeError:
        return None


def _written(conn: Connection) -> str | None:
    """What tells the kept document from any other: when it was written, to the
    microsecond, and its count of records. Any writer writes its own time (a release
    before `MadeFrom`, after a downgrade, too); reading these costs no document (hashing
    it cost a tenth of a quiet cycle; SQLite's `length` of it, half that). The format is
    part of it: an earlier release's value never vouches for a document this one cannot
    read."""
    query = select(_P.c.pulled_at, _P.c.record_count).where(_P.c.id == 1)
    row = conn.execute(query).first()
    return None if row is None else f"{_FORMAT}:{row[0]}:{row[1]}"


def _delta(before: _Document, kinds: Sequence[Kind], rows: dict[str, Row]) -> PullDelta:
    renumber = None
    if before.kinds != kinds[: len(before.kinds)]:
        # Kinds are numbered as they are met, so a kind no longer met (or met in another
        # order) renumbers those after it: say the old rows in today's numbers (a kind
        # gone gets a number no row has). New kinds come last and renumber nothing.
        number = {kind: i for i, kind in enumerate(kinds)}
        renumber = [number.get(kind, -1) for kind in before.kinds]
    found = removed = changed = 0
    users: set[str] = set()
    seen: set[str] = set()
    for chunk in before.rows:
        old_rows = dict(decoded(before.tables, chunk))
        if renumber is not None:
            old_rows = {
                rid: (user, renumber[k], issued, expires)
                for rid, (user, k, issued, expires) in old_rows.items()
            }
        for rid, was in old_rows.items():
            row = rows.get(rid)
            if row is None:
                removed += 1
                users.add(was[0])
            else:
                found += 1
                seen.add(rid)
                if row != was:
                    changed += 1
                    users.update((was[0], row[0]))
    if found < len(rows):
        users.update(row[0] for rid, row in rows.items() if rid not in seen)
    return PullDelta(len(rows) - found, removed, changed, frozenset(users), before.made_from)


@dataclass(frozen=True, slots=True)
class KnownRows:
    """The kept pull, as rows by record id, its kinds, its prints in the rows' order,
    and the body it was made from (`MadeFrom.dumps`)."""

    kinds: list[Kind]
    rows: dict[str, Row]
    prints: bytes
    made_from: str | None

    def by_print(self) -> dict[bytes, str]:
        """Each kept record's id, by its print."""
        at = range(0, len(self.prints), PRINT_SIZE)
        return {self.prints[i : i + PRINT_SIZE]: rid for i, rid in zip(at, self.rows, strict=True)}


class PullSnapshots:
    def __init__(self, db: Db) -> None:
        self._db = db

    def save(
        self,
        records: Sequence[CertificationRecord],
        rejected: Iterable[RejectedRecord] = (),
        *,
        made_from: MadeFrom | None = None,
        prints: bytes = b"",
    ) -> PullDelta:
        """Keep this pull (and `made_from`, the body it was decoded from, and `prints`,
        its records' prints in their order); say what changed since the last one."""
        # One step at a time, each one's values let go before the next: the pull kept
        # and the one before it are never held whole, as text and as rows, at once.
        # The writer lock keeps the one before from changing until this one replaces it.
        with cyclic_gc.paused():
            kept = self._kept_document()
            before = None if kept is None else kept[1]
            del kept
            kinds, rows = _compact(records)
            try:
                delta = PullDelta(None, None, None)
                if before is not None:
                    delta = _delta(before, kinds, rows)
            except _UNREADABLE:  # a chunk damaged: as after an upgrade, say nothing
                delta = PullDelta(None, None, None)
            del before
            count, (tables, chunks) = len(rows), encoded(rows)
            del rows  # 100,000 rows let go before the document is encoded
        self._write(kinds, tables, chunks, count, rejected, made_from=made_from, prints=prints)
        return delta

    def save_rows(
        self,
        kinds: list[Kind],
        rows: dict[str, Row],
        rejected: Iterable[RejectedRecord] = (),
        *,
        made_from: MadeFrom | None = None,
        prints: bytes = b"",
    ) -> None:
        """Keep a pull already made into rows (`known.py`: the kept rows and the new)."""
        tables, chunks = encoded(rows)
        self._write(kinds, tables, chunks, len(rows), rejected, made_from=made_from, prints=prints)

    def _write(
        self,
        kinds: list[Kind],
        tables: Tables,
        chunks: list[bytes],
        count: int,
        rejected: Iterable[RejectedRecord] = (),
        *,
        made_from: MadeFrom | None = None,
        prints: bytes = b"",
    ) -> None:
        if len(prints) != PRINT_SIZE * count:
            prints = b""  # they would not say which row is which
        # `made_from` is in the document too: a release before it rewrites the document
        # without it and leaves the stored value stale, and a 304 must never be answered
        # from a snapshot of another body.
        document = _ENCODER.encode(
            _Document(
                _FORMAT,
                kinds,
                tables,
                chunks,
                [(r.index, r.record_id, r.reason) for r in rejected],
                None if made_from is None else made_from.dumps(),
                prints,
            )
        )
        del tables, chunks  # encoded into the document: not held twice
        with self._db.write() as conn:
            conn.execute(delete(_P))
            values = {"pulled_at": utcnow(), "record_count": count, "document": document}
            conn.execute(insert(_P).values(id=1, **values))
            set_value(conn, _MADE_FROM, "" if made_from is None else made_from.dumps())
            set_value(conn, _DOCUMENT, _written(conn) or "")

    def known(self) -> KnownRows | None:
        """The kept pull's rows, by record id, with their prints, when it has them and
        this release wrote it; None otherwise."""
        with cyclic_gc.paused():
            kept = self._kept_document()
            document = None if kept is None else kept[1]
            if document is None or not document.prints or document.rejected:
                return None
            try:
                rows: dict[str, Row] = {}
                for chunk in document.rows:
                    rows.update(decoded(document.tables, chunk))
            except _UNREADABLE:
                return None
            if len(document.prints) != PRINT_SIZE * len(rows):
                return None
            return KnownRows(document.kinds, rows, document.prints, document.made_from)

    def _kept_document(self) -> tuple[datetime, _Document | None] | None:
        """When the kept pull was made, and its document (None: written by an earlier
        release, or unreadable); None when no pull was kept."""
        with self._db.read() as conn:
            row = conn.execute(select(_P.c.pulled_at, _P.c.document).where(_P.c.id == 1)).first()
        if row is None:
            return None
        pulled_at, raw = row
        del row  # let go before the document is decoded
        return pulled_at, _read(raw)

    def made_from(self) -> MadeFrom | None:
        """The body the kept snapshot was made from; None when unknown, when the
        snapshot is no longer the one this was written with, or when this release cannot
        read it (a 304 would then leave nothing to decide from). Cheap: the document is
        not read."""
        with self._db.read() as conn:
            made = MadeFrom.loads(get_value(conn, _MADE_FROM))
            written = get_value(conn, _DOCUMENT)
            now = _written(conn)
        if made is None or now is None or written != now:
            return None
        return made

    def touch(self) -> None:
        """The kept pull is still the latest (its body unchanged): it is fresh again. A
        value of its own, since rewriting the snapshot's row rewrites its document."""
        with self._db.write() as conn:
            set_value(conn, _FRESH, utcnow().isoformat())

    def load(self) -> KeptPull | None:
        """The last pull kept, as records (the fields a decision reads); None before the
        first sync, or when the last one was kept by an earlier release."""
        with self._db.read() as conn:
            fresh = get_value(conn, _FRESH)
        with cyclic_gc.paused():
            kept = self._kept_document()
            if kept is None:
                return None
            pulled_at, document = kept
            del kept
            if fresh and datetime.fromisoformat(fresh) > pulled_at:
                pulled_at = datetime.fromisoformat(fresh)
            try:
                return None if document is None else _kept(pulled_at, document)
            except _UNREADABLE:
                return None

    def recent(self, max_age: float | None) -> Pull | None:
        """The pull kept, when it is recent enough (`max_age` seconds; None: never) to
        stand for a fresh one, as a webhook's sync of one person takes it."""
        if max_age is None:
            return None
        kept = self.load()
        if kept is None or (utcnow() - kept.pulled_at).total_seconds() > max_age:
            return None
        return Pull(kept.records, kept.rejected)


def _kept(pulled_at: datetime, document: _Document) -> KeptPull:
    make = Records(document.kinds)
    rows = (row for chunk in document.rows for row in decoded(document.tables, chunk))
    records = [make(rid, row) for rid, row in rows]
    rejected = tuple(RejectedRecord(*r) for r in document.rejected)
    return KeptPull(pulled_at, tuple(records), rejected, MadeFrom.loads(document.made_from))
