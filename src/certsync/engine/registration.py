"""A user registered in Monotree (a webhook): learn who they are, then sync just them."""

from __future__ import annotations

from collections.abc import Callable

import structlog

from certsync.clients.session import Clients
from certsync.engine.cycle import run_sync
from certsync.engine.report import SyncOptions, SyncReport
from certsync.engine.scope import Scope
from certsync.people import find_person
from certsync.settings import Settings
from certsync.store import Store, utcnow

log = structlog.get_logger("certsync.engine.registration")


def sync_registered(
    settings: Settings,
    store: Store,
    clients: Clients,
    delivery_id: str,
    *,
    should_stop: Callable[[], bool] = lambda: False,
) -> tuple[SyncReport | None, float | None]:
    """Handle one recorded `monotree.user.registered`: the user's id and email join the
    user cache (so an email mapping waiting for them resolves), then a sync scoped to
    them runs, from the kept pull when it is recent. The report, and the seconds from
    delivery to certificates sent (None when nothing was sent or it failed)."""
    delivery = store.deliveries.get(delivery_id)
    if delivery is None or delivery.state != "received" or delivery.user_id is None:
        return None, None
    store.users.remember(delivery.user_id, delivery.email)
    # Only the mappings that name this user: a delivery costs a lookup, not a load of all.
    naming = store.mappings.users_naming(delivery.user_id, delivery.email)
    by_email = {delivery.email: delivery.user_id} if delivery.email else {}
    person = find_person(str(delivery.user_id), naming, by_email)
    if not person.natecosmic_ids:
        log.info("webhook.no_mapping", delivery=delivery_id, user=delivery.user_id)
        store.deliveries.handled(delivery_id, "no-mapping")
        return None, None
    report = run_sync(
        settings,
        store,
        clients,
        SyncOptions(
            scope=Scope.of_users([delivery.user_id]),
            kept_pull_max_age=settings.webhook.pull_max_age,
        ),
        should_stop=should_stop,
    )
    if report.result.stopped or should_stop():
        # Stopped (SIGTERM, or this replica no longer leads): left waiting, so the next
        # leader (or this one after a restart) handles it.
        return report, None
    ok = report.error is None and not report.result.failures
    store.deliveries.handled(delivery_id, "applied" if ok else "failed", report.run_id)
    if not ok or not report.requests:
        return report, None
    waited = (utcnow() - delivery.received_at).total_seconds()
    log.info(
        "webhook.applied", delivery=delivery_id, run_id=report.run_id, seconds=round(waited, 3)
    )
    return report, waited
