"""What one cycle was asked to do and what it did: the report every output is made from."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from datetime import date
from typing import Literal, Protocol

from certsync.actions import ApplyResult, Plan
from certsync.engine.review import Reviewed, Skipped
from certsync.engine.scope import Scope
from certsync.errors import CertsyncError
from certsync.models import Mappings
from certsync.store import PullDelta, Store
from certsync.writes import WriteRequest

# "user": a sync scoped to some people (`sync --user`, the daemon's on-demand runs);
# "approve" and "apply": runs that send only what a person reviewed.
Kind = Literal["full", "incremental", "user", "approve", "apply"]


class Outcome(enum.StrEnum):
    """How a cycle ended: the journal, the metrics and the exit code are all made from this."""

    CONVERGED = "converged"
    DRY_RUN = "dry-run"
    HELD_BACK = "held-back"  # the guard held revocations back: a human decides
    PARTIAL = "partial"  # some writes failed or could not be planned (a missing template)
    ERROR = "error"  # the cycle could not finish: `failure` says why

    @property
    def succeeded(self) -> bool:
        return self in (Outcome.CONVERGED, Outcome.DRY_RUN)


@dataclass(frozen=True)
class SyncOptions:
    dry_run: bool = False
    force_full: bool = False
    allow_mass_revoke: bool = False
    today: date | None = None
    scope: Scope = field(default_factory=Scope)
    # Send only what a person reviewed (approve, apply); its templates are read afresh.
    review: Reviewed | None = None
    # Fingerprint what the plan was made on (plan --out).
    digests: bool = False
    # A sync of some people may use the pull the last sync kept, if it is no older.
    kept_pull_max_age: float | None = None
    # Steps that must run under the writer lock with the run (approve's checks).
    under_lock: UnderLock | None = None


class UnderLock(Protocol):
    def before(self, store: Store) -> None:
        """Before the run starts; raising ends it with nothing sent."""

    def after(self, store: Store, report: SyncReport) -> None:
        """After the run's writes, before the lock is let go."""


@dataclass
class SyncReport:
    """Everything one cycle did, for the table, the JSON document, the journal and metrics."""

    run_id: str
    kind: Kind
    dry_run: bool
    plan: Plan = field(default_factory=Plan)
    requests: list[WriteRequest] = field(default_factory=list)
    result: ApplyResult = field(default_factory=ApplyResult)
    request_counts: dict[str, int] = field(default_factory=dict)
    pull_records: int = 0
    pull_delta: PullDelta | None = None
    templates_read: list[int] = field(default_factory=list)
    # Read because Monotree's count of holders moved (template -> the count it showed),
    # and mapped templates whose count is not trusted to show a change made by hand.
    counts_moved: dict[int, int] = field(default_factory=dict)
    counts_untrusted: list[int] = field(default_factory=list)
    missing_templates: list[int] = field(default_factory=list)
    unpublished_templates: list[int] = field(default_factory=list)
    unresolved_emails: list[str] = field(default_factory=list)
    # Names shown beside ids: template titles from Monotree's list, user emails or names.
    template_titles: dict[int, str] = field(default_factory=dict)
    user_labels: dict[int, str] = field(default_factory=dict)
    type_keys: dict[int, list[str]] = field(default_factory=dict)
    error: str | None = None
    # The error that ended the cycle; None for an interruption (Ctrl-C) or no error.
    failure: CertsyncError | None = None
    # Reviewed actions the fresh plan no longer makes (approve), and why.
    skipped: tuple[Skipped, ...] = ()
    # The run whose held-back revocations wait for `certsync approve`.
    held_plan: str | None = None
    digests: dict[str, str] = field(default_factory=dict)
    duration: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    # A quiet cycle (`quiet.py`): the run whose inputs were these, and what it counted.
    unchanged_since: str | None = None
    kept_counts: dict[str, int] = field(default_factory=dict)
    # A decision made again for the people a change touched (`narrow.py`): how many
    # Monotree users; None when the cycle decided over everyone, or not at all.
    decided_again: int | None = None

    @property
    def outcome(self) -> Outcome:
        if self.error is not None:
            return Outcome.ERROR
        if self.plan.guard_held:
            return Outcome.HELD_BACK
        if self.result.failures or self.result.stopped or self.missing_templates:
            return Outcome.PARTIAL
        return Outcome.DRY_RUN if self.dry_run else Outcome.CONVERGED

    def counts(self) -> dict[str, int]:
        if self.unchanged_since is not None:
            # The plan stands as the run that made it counted it; this run sent nothing.
            return {**self.kept_counts, "write_requests": 0, "failed_requests": 0, "skipped": 0}
        p = self.plan
        return {
            "assign": len(p.assigns),
            "renew": len(p.renewals),
            "revoke": len(p.revokes),
            "held_back": len(p.held_back_revokes),
            "drift": len(p.drift),
            "kept_newer": len(p.kept_newer),
            "not_owned_left_alone": p.left_alone,
            "unmapped": len(p.unmapped),
            "rejected": len(p.rejected),
            "missing_users": len(p.missing_users),
            "unmanaged": len(p.unmanaged),
            "missing_templates": len(self.missing_templates),
            "unpublished_templates": len(self.unpublished_templates),
            "unresolved_emails": len(self.unresolved_emails),
            "write_requests": len(self.requests),
            "failed_requests": len(self.result.failures),
            "skipped": len(self.skipped),
        }


def type_keys(mappings: Mappings) -> dict[int, list[str]]:
    """Template id -> the Natecosmic types mapped to it: the name an operator wrote."""
    out: dict[int, list[str]] = {}
    for key, t in sorted(mappings.types.items()):
        out.setdefault(t.monotree, []).append(key)
    return out


class PhaseClock:
    """Wall seconds of each phase of a cycle, for the report and the benchmark."""

    def __init__(self, into: dict[str, float]) -> None:
        self._into = into
        self._last = time.monotonic()

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self._into[name] = round(self._into.get(name, 0.0) + now - self._last, 4)
        self._last = now
