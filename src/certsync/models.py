"""Frozen value types shared by the clients, the store and the plan: what Natecosmic
and Monotree say, and the mappings between them (what a plan says to do is in
`actions.py`).

Nothing here does I/O: these are the nouns the rest of certsync passes around.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import msgspec

# --- Natecosmic -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CertificationType:
    """The certification type embedded in a Natecosmic record."""

    id: str | None = None
    slug: str | None = None
    title: str | None = None
    status: str | None = None


@dataclass(frozen=True, slots=True)
class CertificationRecord:
    """One Natecosmic certification: the fields a decision reads. Every documented
    field is validated as the pull is decoded (`clients/records.py`); the rest are
    not kept, so a large pull costs what certsync uses of it.

    Enumerations stay plain strings: a value Natecosmic adds later is kept, and
    simply does not count as held.
    """

    id: str
    user_id: str
    issued_on: date
    lifecycle_status: str
    validity_status: str
    certification_type_id: str | None = None
    certification_type: CertificationType | None = None
    expires_on: date | None = None
    verification_status: str | None = None

    def type_keys(self) -> tuple[str, ...]:
        """Keys a type mapping may use for this record: the type UUID first, then its slug."""
        keys: list[str] = []
        if self.certification_type_id:
            keys.append(self.certification_type_id)
        if self.certification_type is not None:
            if self.certification_type.slug:
                keys.append(self.certification_type.slug)
            if self.certification_type.id and self.certification_type.id not in keys:
                keys.append(self.certification_type.id)
        return tuple(keys)


@dataclass(frozen=True, slots=True)
class RejectedRecord:
    """A Natecosmic record that failed validation: skipped and reported, never fatal."""

    index: int
    record_id: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class Pull:
    """The result of one Natecosmic pull."""

    # A tuple, or the records of a pull made of the kept one (`rows.KeptRecords`).
    records: Sequence[CertificationRecord]
    rejected: tuple[RejectedRecord, ...] = ()
    # Each record's print, in order, when the pull was decoded with them
    # (`clients/records.print_of`); else empty.
    prints: bytes = field(default=b"", repr=False)


# --- Monotree -------------------------------------------------------------------


class Holding(msgspec.Struct, frozen=True, gc=False):
    """What Monotree says (or certsync last knew) of one user's certificate.

    `expiry_known` is false where certsync wrote the holding itself and has not
    yet read back the expiry Monotree derived from the template.

    A compiled struct, not a dataclass: a cycle makes 95,000 of them (from the
    store, or from a full read's pages), and a frozen dataclass's `__init__` cost
    eight times as much CPU. Without the collector's header (`gc=False`): it holds no
    container, so it can be in no reference cycle.
    """

    certificate_id: int
    user_id: int
    active: bool
    issued_on: date | None = None
    expires_on: date | None = None
    expiry_known: bool = True


Holdings = Mapping[int, Mapping[int, Holding]]
"""certificate id -> Monotree user id -> holding, for every template certsync knows."""

Pair = tuple[int, int]
"""(certificate id, Monotree user id)."""


# Monotree's own nouns, as its template and user lists give them.


# expiry known, expires on, issued on, how many holdings
CountRow = tuple[bool, date | None, date | None, int]


@dataclass(frozen=True, slots=True)
class TemplateState:
    """Whether certsync's picture of a template can be trusted without reading it again."""

    certificate_id: int
    read_at: datetime | None
    dirty: bool
    # Whether Monotree's `active_users_count` matched the last full read (None: unknown).
    count_matches: bool | None = None


@dataclass(frozen=True, slots=True)
class CertificateType:
    id: int
    title: str | None = None
    is_published: bool | None = None


@dataclass(frozen=True, slots=True)
class Template:
    """A certificate template."""

    id: int
    title: str
    description: str | None = None
    validity_months: int | None = None
    reset_days_before_expiry: int | None = None
    active_users_count: int | None = None
    is_published: bool = False
    certificate_type: CertificateType | None = None
    published_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class User:
    id: int
    name: str | None = None
    email: str | None = None
    type: str | None = None
    groups: tuple[dict[str, Any], ...] = ()
    hired_at: str | None = None
    is_away: bool | None = None
    last_active_on: str | None = None
    registered_at: str | None = None
    created_at: str | None = None


# --- mappings and policy --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Policy:
    """The `[policy]` table of the mapping file."""

    revoke: bool = True
    notify_on_revoke: bool = False
    require_verified: bool = False
    max_revoke_fraction: float = 0.2
    max_revoke_min: int = 10
    # A removed mapping is a configuration change: by default its owned holdings
    # are kept and reported as unmanaged; true revokes them, through the guard.
    revoke_unmapped: bool = False


@dataclass(frozen=True, slots=True)
class Ownership:
    """A holding certsync issued: when, and in which run (None once the run is pruned)."""

    certificate_id: int
    user_id: int
    issued_on: date
    run_id: str
    run_started_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class TypeMapping:
    """A Natecosmic certification type (slug or UUID) -> a Monotree template."""

    natecosmic: str
    monotree: int
    authoritative: bool = False


def normal_email(email: str | None) -> str | None:
    """An email as certsync compares it: trimmed, lower case (Monotree's addresses are
    matched case-insensitively); None for none."""
    return email.strip().lower() if email else None


@dataclass(frozen=True, slots=True)
class UserMapping:
    """A Natecosmic user -> a Monotree user, by id or by an email still to resolve."""

    natecosmic: str
    monotree: int | None = None
    monotree_email: str | None = None


@dataclass(frozen=True, slots=True)
class Mappings:
    """Everything the plan needs to translate Natecosmic into Monotree terms."""

    types: Mapping[str, TypeMapping]
    users: Mapping[str, int]
    policy: Policy = field(default_factory=Policy)

    def template_ids(self) -> tuple[int, ...]:
        return tuple(sorted({t.monotree for t in self.types.values()}))

    def authoritative_templates(self) -> frozenset[int]:
        return frozenset(t.monotree for t in self.types.values() if t.authoritative)

    def mapped_users(self) -> frozenset[int]:
        return frozenset(self.users.values())


def resolve_mappings(
    types: Iterable[TypeMapping],
    users: Iterable[UserMapping],
    policy: Policy,
    users_by_email: Mapping[str, int],
) -> tuple[Mappings, list[UserMapping]]:
    """Mappings ready for the plan, and the email mappings Monotree's user list cannot resolve."""
    resolved: dict[str, int] = {}
    unresolved: list[UserMapping] = []
    for u in users:
        if u.monotree is not None:
            resolved[u.natecosmic] = u.monotree
        elif u.monotree_email is not None and u.monotree_email in users_by_email:
            resolved[u.natecosmic] = users_by_email[u.monotree_email]
        else:
            unresolved.append(u)
    by_key = {t.natecosmic: t for t in types}
    return Mappings(types=by_key, users=resolved, policy=policy), unresolved
