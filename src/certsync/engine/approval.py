"""Deciding on revocations the guard held back: approve sends those a fresh plan still
makes (and records what became of each), reject drops them. The CLI and the daemon's
admin API both come here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from certsync.clients.session import Clients
from certsync.engine.cycle import run_sync
from certsync.engine.report import Outcome, SyncOptions, SyncReport
from certsync.engine.review import Reviewed
from certsync.engine.scope import Scope
from certsync.settings import Settings
from certsync.store import HeldPlan, Store


def approve_held(
    settings: Settings,
    store: Store,
    clients: Clients,
    run_id: str,
    *,
    by: str,
    dry_run: bool = False,
    should_stop: Callable[[], bool] = lambda: False,
) -> SyncReport:
    """Send the held-back revocations of `run_id` that a fresh plan still makes, each
    read afresh first. Under the writer lock, with the run: the plan must still be held
    when it starts, and the approval is recorded before the lock is let go, only when
    every pair was revoked or skipped. A run that failed some or stopped leaves the plan
    held, so approving it again sends what is left."""
    held = store.held.open_for_decision(run_id)
    reviewed = Reviewed.held(held.revokes)
    options = SyncOptions(
        dry_run=dry_run,
        scope=Scope.of_templates(reviewed.templates),
        review=reviewed,
        under_lock=_Approval(run_id, held, by),
    )
    return run_sync(settings, store, clients, options, should_stop=should_stop)


@dataclass(frozen=True)
class _Approval:
    run_id: str
    held: HeldPlan
    by: str

    def before(self, store: Store) -> None:
        store.held.open_for_decision(self.run_id)  # not decided meanwhile by another

    def after(self, store: Store, report: SyncReport) -> None:
        if report.outcome is not Outcome.CONVERGED:
            return
        store.held.decide(
            self.run_id,
            "approved",
            by=self.by,
            decided_run_id=report.run_id,
            outcomes=_outcomes(self.held, report),
        )


def reject_held(settings: Settings, store: Store, run_id: str, *, by: str) -> HeldPlan:
    """Mark `run_id`'s held-back revocations rejected; none is sent."""
    with store.lock.held(timeout=settings.sync.lock_timeout, what=f"the store {store.shown}"):
        held = store.held.open_for_decision(run_id)
        store.held.decide(run_id, "rejected", by=by)
    return held


def _outcomes(held: HeldPlan, report: SyncReport) -> dict[tuple[int, int], tuple[str, str | None]]:
    """Each pair's outcome, for a run that converged: every request it sent succeeded."""
    skipped = {(s.certificate_id, s.user_id): s.why for s in report.skipped}
    return {
        (v.certificate_id, v.user_id): (
            ("skipped", skipped[(v.certificate_id, v.user_id)])
            if (v.certificate_id, v.user_id) in skipped
            else ("revoked", None)
        )
        for v in held.revokes
    }
