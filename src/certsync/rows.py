"""A record as the pull snapshot keeps it: a row of what is its own (user, dates) and the index
of its kind, what many records share (statuses and type)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence, Set
from datetime import date
from typing import overload

from certsync.models import CertificationRecord, CertificationType

# lifecycle, validity and verification status, the type's id, whether the record
# embeds a type, and the embedded type's id, slug, title and status
Kind = tuple[str, str, str | None, str | None, bool, str | None, str | None, str | None, str | None]
# user, kind (an index into the kinds), issued on, expires on
Row = tuple[str, int, date, date | None]


def kind_of(record: CertificationRecord) -> Kind:
    ct = record.certification_type
    return (
        record.lifecycle_status,
        record.validity_status,
        record.verification_status,
        record.certification_type_id,
        ct is not None,
        *((ct.id, ct.slug, ct.title, ct.status) if ct is not None else (None,) * 4),
    )


def _fields(k: Kind) -> tuple[str, str, str | None, CertificationType | None, str | None]:
    """A kind as a record's fields: lifecycle, validity, type id, type, verification."""
    return (k[0], k[1], k[3], CertificationType(*k[5:]) if k[4] else None, k[2])


class Records:
    """Makes records of rows, sharing each kind's type, a user's id and each date among
    the records that hold them, as the decoders do."""

    def __init__(self, kinds: Sequence[Kind]) -> None:
        self._kinds = [_fields(k) for k in kinds]
        self._users: dict[str, str] = {}
        self._days: dict[date, date] = {}

    def add_kind(self, kind: Kind) -> None:
        self._kinds.append(_fields(kind))

    def __call__(self, rid: str, row: Row) -> CertificationRecord:
        user, k, issued, expires = row
        day = self._days.setdefault
        lifecycle, validity, type_id, ctype, verification = self._kinds[k]
        return CertificationRecord(
            rid,
            self._users.setdefault(user, user),
            day(issued, issued),
            lifecycle,
            validity,
            type_id,
            ctype,
            None if expires is None else day(expires, expires),
            verification,
        )


class KeptRecords(Sequence[CertificationRecord]):
    """The records of a pull made of the kept one (`store/known.py`), each made from its
    row when first asked for: a decision made again for some people reads theirs alone
    (`of_users`), and a whole one all of them, once."""

    def __init__(
        self, make: Records, rows: dict[str, Row], fresh: dict[str, CertificationRecord]
    ) -> None:
        self._make = make
        self._rows = rows
        self._fresh = fresh
        self._all: tuple[CertificationRecord, ...] | None = None

    def of_users(self, users: Set[str]) -> list[CertificationRecord]:
        """The records of these Natecosmic users, in the pull's order."""
        return [self._record(rid, row) for rid, row in self._rows.items() if row[0] in users]

    def _record(self, rid: str, row: Row) -> CertificationRecord:
        fresh = self._fresh.get(rid)
        return fresh if fresh is not None else self._make(rid, row)

    def _every(self) -> tuple[CertificationRecord, ...]:
        if self._all is None:
            self._all = tuple(self._record(rid, row) for rid, row in self._rows.items())
        return self._all

    def __len__(self) -> int:
        return len(self._rows)

    @overload
    def __getitem__(self, index: int) -> CertificationRecord: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[CertificationRecord]: ...
    def __getitem__(
        self, index: int | slice
    ) -> CertificationRecord | Sequence[CertificationRecord]:
        return self._every()[index]

    def __iter__(self) -> Iterator[CertificationRecord]:
        return iter(self._every())


def records_of(
    records: Sequence[CertificationRecord], users: Set[str]
) -> list[CertificationRecord]:
    """The records of these Natecosmic users, without making the others' when kept."""
    if isinstance(records, KeptRecords):
        return records.of_users(users)
    return [r for r in records if r.user_id in users]
