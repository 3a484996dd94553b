"""The last pull, kept compact: what changed upstream since the cycle before, and the
records themselves for `explain --from-snapshot` (no request to Natecosmic).

Each record is kept as the fields a decision reads: id, user, type, dates and the
three statuses; the types are kept once each. A snapshot written by an earlier
release (a digest per record) is still compared, once, by the same digests.
"""

from __future__ import annotations

import base64
import hashlib
import json
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import delete, insert, select

from certsync import __version__
from certsync.models import CertificationRecord, CertificationType, RejectedRecord
from certsync.store.db import Db, table_of
from certsync.store.lock import utcnow
from certsync.store.tables import PullSnapshotRow
from certsync.store.values import get_value, set_value

_P = table_of(PullSnapshotRow)
_FORMAT = 2
# Which body the snapshot was made from (`MadeFrom`), kept in the same transaction as
# the snapshot: a 304 to its validators, or a body with its digest, *is* that snapshot.
_MADE_FROM = "pull_made_from"
# The digest of the snapshot's document as this release wrote it: a release before
# `MadeFrom` rewrites the document and leaves the value above behind, stale.
_DOCUMENT = "pull_document"
# When a pull last found the kept one unchanged (`touch`).
_FRESH = "pull_fresh_at"


@dataclass(frozen=True, slots=True)
class MadeFrom:
    """The body a pull came from: its origin (Natecosmic's base URL), the release that
    parsed it (another may parse differently), its SHA-256, and the validators
    Natecosmic gave it (`ETag`, `Last-Modified`), if any."""

    source: str
    digest: str
    etag: str | None = None
    last_modified: str | None = None
    version: str = __version__

    def dumps(self) -> str:
        return json.dumps([self.source, self.version, self.digest, self.etag, self.last_modified])

    @classmethod
    def loads(cls, text: str | None) -> MadeFrom | None:
        try:
            made = json.loads(text or "null")
        except ValueError:
            return None
        if not (isinstance(made, list) and len(made) == 5):
            return None  # none, or a release before digests: nothing to compare with
        source, version, digest, etag, modified = made
        return cls(source, digest, etag, modified, version)

    def same_parser(self, source: str) -> bool:
        """Made by this release from this origin: a body it names may stand for this one."""
        return self.source == source and self.version == __version__


# user, lifecycle_status, type (an index into the types), issued_on and expires_on
# (ordinals, 0 for none), validity_status, verification_status
Row = tuple[str, str, int, int, int, str, str | None]
TypeKey = tuple[str | None, str | None, str | None, str | None, str | None]


@dataclass(frozen=True, slots=True)
class PullDelta:
    """How the latest pull differs from the one before (None counts: no earlier pull)."""

    added: int | None
    removed: int | None
    changed: int | None


@dataclass(frozen=True, slots=True)
class KeptPull:
    pulled_at: datetime
    records: tuple[CertificationRecord, ...]
    rejected: tuple[RejectedRecord, ...] = ()
    made_from: MadeFrom | None = None  # as the snapshot itself says


def _legacy_digest(record: CertificationRecord) -> str:
    """How releases before format 2 fingerprinted a record."""
    return hashlib.blake2b(repr(record).encode(), digest_size=8).hexdigest()


def _compact(records: Iterable[CertificationRecord]) -> tuple[list[TypeKey], dict[str, Row]]:
    # Ordinals, not ISO strings, and each type once: a third of the CPU of the digests
    # this replaces, at 100,000 records a cycle.
    types: dict[TypeKey, int] = {}
    rows: dict[str, Row] = {}
    for r in records:
        ct = r.certification_type
        key: TypeKey = (
            r.certification_type_id,
            *((ct.id, ct.slug, ct.title, ct.status) if ct is not None else (None,) * 4),
        )
        index = types.setdefault(key, len(types))
        expires = r.expires_on.toordinal() if r.expires_on is not None else 0
        rows[r.id] = (
            r.user_id,
            r.lifecycle_status,
            index,
            r.issued_on.toordinal(),
            expires,
            r.validity_status,
            r.verification_status,
        )
    return list(types), rows


def _encode(document: object) -> str:
    # Light compression: zlib level 6 cost half a second a cycle at 100,000 records
    # for a smaller blob nobody reads whole.
    return base64.b64encode(zlib.compress(json.dumps(document).encode(), 1)).decode()


def _document_digest(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()


def _decode(body: str) -> Any:
    return json.loads(zlib.decompress(base64.b64decode(body)))


class PullSnapshots:
    def __init__(self, db: Db) -> None:
        self._db = db

    def save(
        self,
        records: Iterable[CertificationRecord],
        rejected: Iterable[RejectedRecord] = (),
        *,
        made_from: MadeFrom | None = None,
    ) -> PullDelta:
        """Keep this pull (and `made_from`, the body it was decoded from); say what
        changed since the last one."""
        records = tuple(records)
        types, rows = _compact(records)
        refused = [[r.index, r.record_id, r.reason] for r in rejected]
        # `made_from` is in the document too: a release before it rewrites the document
        # without it and leaves the stored value stale, and a 304 must never be answered
        # from a snapshot of another body.
        body = _encode(
            {
                "format": _FORMAT,
                "types": types,
                "rows": rows,
                "rejected": refused,
                "made_from": None if made_from is None else made_from.dumps(),
            }
        )
        with self._db.write() as conn:
            prev = conn.execute(select(_P.c.body).where(_P.c.id == 1)).scalar()
            conn.execute(delete(_P))
            conn.execute(
                insert(_P).values(id=1, pulled_at=utcnow(), record_count=len(rows), body=body)
            )
            set_value(conn, _MADE_FROM, "" if made_from is None else made_from.dumps())
            set_value(conn, _DOCUMENT, _document_digest(body))
        if prev is None:
            return PullDelta(None, None, None)
        before = _decode(prev)
        if isinstance(before, dict) and before.get("format") == _FORMAT:
            old_types: list[list[Any]] = before["types"]
            old_rows: dict[str, list[Any]] = before["rows"]
            now_types = [list(t) for t in types]

            def same(rid: str, row: Row) -> bool:
                was = old_rows[rid]
                return (
                    [*was[:2], *was[3:]] == [*row[:2], *row[3:]]
                    and was[2] < len(old_types)
                    and old_types[was[2]] == now_types[row[2]]
                )

            changed = sum(1 for k, v in rows.items() if k in old_rows and not same(k, v))
            old_ids: Iterable[str] = old_rows
        else:  # a digest per record, as releases before format 2 kept it
            digests: dict[str, str] = before
            changed = sum(
                1 for r in records if r.id in digests and digests[r.id] != _legacy_digest(r)
            )
            old_ids = digests
        old = set(old_ids)
        added = sum(1 for k in rows if k not in old)
        removed = sum(1 for k in old if k not in rows)
        return PullDelta(added, removed, changed)

    def made_from(self) -> MadeFrom | None:
        """The body the kept snapshot was made from; None when unknown, or when the
        snapshot is no longer the one this was written with. Cheap: the document is
        hashed, not decoded."""
        with self._db.read() as conn:
            made = MadeFrom.loads(get_value(conn, _MADE_FROM))
            written = get_value(conn, _DOCUMENT)
            body = conn.execute(select(_P.c.body).where(_P.c.id == 1)).scalar()
        if made is None or body is None or written != _document_digest(body):
            return None
        return made

    def touch(self) -> None:
        """The kept pull is still the latest (its body unchanged): it is fresh again. A
        value of its own, since rewriting the snapshot's row rewrites its document."""
        with self._db.write() as conn:
            set_value(conn, _FRESH, utcnow().isoformat())

    def load(self) -> KeptPull | None:
        """The last pull kept, as records (the fields a decision reads); None before the
        first sync, or when the last one was kept by a release before format 2."""
        with self._db.read() as conn:
            row = conn.execute(select(_P.c.pulled_at, _P.c.body).where(_P.c.id == 1)).first()
            fresh = get_value(conn, _FRESH)
        if row is None:
            return None
        pulled_at = row.pulled_at
        if fresh and datetime.fromisoformat(fresh) > pulled_at:
            pulled_at = datetime.fromisoformat(fresh)
        document = _decode(row.body)
        if not (isinstance(document, dict) and document.get("format") == _FORMAT):
            return None
        types = [
            (
                t[0],
                CertificationType(id=t[1], slug=t[2], title=t[3], status=t[4])
                if any(v is not None for v in t[1:])
                else None,
            )
            for t in document["types"]
        ]
        records = []
        for rid, (user, lifecycle, index, issued, expires, validity, verification) in document[
            "rows"
        ].items():
            type_id, ctype = types[index]
            records.append(
                CertificationRecord(
                    id=rid,
                    user_id=user,
                    issued_on=date.fromordinal(issued),
                    lifecycle_status=lifecycle,
                    validity_status=validity,
                    certification_type_id=type_id,
                    certification_type=ctype,
                    expires_on=date.fromordinal(expires) if expires else None,
                    verification_status=verification,
                )
            )
        rejected = tuple(
            RejectedRecord(index, record_id, reason)
            for index, record_id, reason in document.get("rejected", [])
        )
        return KeptPull(
            pulled_at, tuple(records), rejected, MadeFrom.loads(document.get("made_from"))
        )
