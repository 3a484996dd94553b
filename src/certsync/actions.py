"""What a plan says to do, what it only reports, and what applying it did: the values
the planner makes, the guard holds back, the writes carry out and the report prints.

Nothing here does I/O.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date
from typing import Literal

from certsync.models import RejectedRecord

# --- the plan -------------------------------------------------------------------


@dataclass(frozen=True, slots=True, order=True)
class Assign:
    """Issue a certificate that is desired and not active in Monotree."""

    certificate_id: int
    user_id: int
    completed_at: date
    record_id: str


@dataclass(frozen=True, slots=True, order=True)
class Renewal:
    """Monotree holds an older issue: reset it, then assign the newer one."""

    certificate_id: int
    user_id: int
    completed_at: date
    previous_issued_on: date
    record_id: str


@dataclass(frozen=True, slots=True, order=True)
class Revoke:
    """An active holding no longer desired: reset with expire.

    `owned` is false only where the template's mapping is authoritative;
    `unmapped` is true where its user or type mapping was removed and
    `policy.revoke_unmapped` asks for the revocation.
    """

    certificate_id: int
    user_id: int
    owned: bool
    unmapped: bool = False


@dataclass(frozen=True, slots=True, order=True)
class Unmanaged:
    """An owned active holding no longer desired whose type or user mapping is gone.

    Kept, with its ownership, until the mapping returns or `revoke_unmapped` is set.
    """

    certificate_id: int
    user_id: int
    reason: Literal["type", "user"]


@dataclass(frozen=True, slots=True, order=True)
class Drift:
    """Report only: Monotree's expiry and Natecosmic's differ by more than a day."""

    certificate_id: int
    user_id: int
    monotree_expires_on: date | None
    natecosmic_expires_on: date | None


@dataclass(frozen=True, slots=True, order=True)
class KeptNewer:
    """Report only: Monotree holds a newer issue than Natecosmic; left alone."""

    certificate_id: int
    user_id: int
    monotree_issued_on: date
    natecosmic_issued_on: date


@dataclass(frozen=True, slots=True, order=True)
class Unmapped:
    """A record whose type or user has no mapping."""

    kind: Literal["type", "user"]
    key: str
    record_id: str


@dataclass(frozen=True, slots=True, order=True)
class MissingUser:
    """A mapped Monotree user that Monotree does not list (deactivated, invite pending)."""

    user_id: int
    certificate_id: int
    record_id: str


class HoldBack(enum.Enum):
    """Why revocations were held back; only the guard's reasons make a run exit 3."""

    POLICY = "policy"  # [policy] revoke = false: revocations are never sent
    MASS_REVOKE = "mass-revoke"  # more than the guard allows in one run
    EMPTY_PULL = "empty-pull"  # no valid record upstream: never a reason to revoke

    @property
    def by_guard(self) -> bool:
        return self is not HoldBack.POLICY


@dataclass(frozen=True, slots=True)
class Plan:
    """The whole diff between Natecosmic and Monotree, sorted so equal inputs give equal plans."""

    assigns: tuple[Assign, ...] = ()
    renewals: tuple[Renewal, ...] = ()
    revokes: tuple[Revoke, ...] = ()
    drift: tuple[Drift, ...] = ()
    kept_newer: tuple[KeptNewer, ...] = ()
    unmapped: tuple[Unmapped, ...] = ()
    missing_users: tuple[MissingUser, ...] = ()
    rejected: tuple[RejectedRecord, ...] = ()
    unmanaged: tuple[Unmanaged, ...] = ()
    desired: int = 0
    owned_active: int = 0
    left_alone: int = 0
    held_back_revokes: tuple[Revoke, ...] = ()
    held_back_reason: str | None = None
    held_back_kind: HoldBack | None = None

    @property
    def guard_held(self) -> bool:
        """Revocations the safety guard held back: a run that needs a human (exit 3)."""
        return bool(self.held_back_revokes) and (
            self.held_back_kind is not None and self.held_back_kind.by_guard
        )

    @property
    def has_writes(self) -> bool:
        return bool(self.assigns or self.renewals or self.revokes)


# --- the report -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Failure:
    """A write that failed, or whose outcome is unknown, with the reason."""

    action: Literal["assign", "reset"]
    certificate_ids: tuple[int, ...]
    user_ids: tuple[int, ...]
    error: str
    outcome: Literal["failed", "unknown"] = "failed"


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """What applying the write requests of a plan did."""

    requests_ok: int = 0
    failures: tuple[Failure, ...] = ()
    stopped: str | None = None
