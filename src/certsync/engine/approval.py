"""Deciding on revocations the guard held back: approve sends those a fresh plan still
makes (and records what became of each), reject drops them. The CLI and the daemon's
admin API both come here."""

from __future__ import annotations

from collections.abc import Callable

from certsync.clients.session import Clients
from certsync.engine.cycle import run_sync
from certsync.engine.report import SyncOptions, SyncReport
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
    read afresh first; record the approval, who gave it, and each pair's outcome."""
    held = store.held.open_for_decision(run_id)
    reviewed = Reviewed.held(held.revokes)
    options = SyncOptions(
        dry_run=dry_run, scope=Scope.of_templates(reviewed.templates), review=reviewed
    )
    report = run_sync(settings, store, clients, options, should_stop=should_stop)
    if not dry_run and report.error is None:
        store.held.decide(
            run_id,
            "approved",
            by=by,
            decided_run_id=report.run_id,
            outcomes=_outcomes(held, report),
        )
    return report


def reject_held(settings: Settings, store: Store, run_id: str, *, by: str) -> HeldPlan:
    """Mark `run_id`'s held-back revocations rejected; none is sent."""
    with store.lock.held(timeout=settings.sync.lock_timeout, what=f"the store {store.shown}"):
        held = store.held.open_for_decision(run_id)
        store.held.decide(run_id, "rejected", by=by)
    return held


def _outcomes(held: HeldPlan, report: SyncReport) -> dict[tuple[int, int], tuple[str, str | None]]:
    failed = {
        (cert, user)
        for f in report.result.failures
        if f.action == "reset"
        for cert in f.certificate_ids
        for user in f.user_ids
    }
    skipped = {(s.certificate_id, s.user_id): s.why for s in report.skipped}
    out: dict[tuple[int, int], tuple[str, str | None]] = {}
    for v in held.revokes:
        pair = (v.certificate_id, v.user_id)
        if pair in skipped:
            out[pair] = ("skipped", skipped[pair])
        elif pair in failed:
            out[pair] = ("failed", None)
        else:
            out[pair] = ("revoked", None)
    return out
