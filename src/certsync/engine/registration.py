"""Users registered in Monotree (webhooks): learn who they are, then sync just them.

Deliveries are handled in groups: what arrived while the runner was busy is taken
together, so a wave of registrations costs one transaction per step and one scoped
sync, not one of each per person (at 200 deliveries a second the runner fell behind
by half when it took them one at a time; docs/performance.md).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence

import structlog

from certsync.clients.session import Clients
from certsync.engine.cycle import run_sync
from certsync.engine.report import SyncOptions, SyncReport
from certsync.engine.scope import Scope
from certsync.models import normal_email
from certsync.people import find_person
from certsync.settings import Settings
from certsync.store import Delivery, Store, utcnow

log = structlog.get_logger("certsync.engine.registration")


def sync_registered(
    settings: Settings,
    store: Store,
    clients: Clients,
    delivery_ids: Sequence[str],
    *,
    should_stop: Callable[[], bool] = lambda: False,
) -> tuple[SyncReport | None, list[float]]:
    """Handle recorded `monotree.user.registered` deliveries: each user's id and email
    join the user cache (so an email mapping waiting for them resolves), then one sync
    scoped to those users a mapping names runs, from the kept pull when it is recent.
    The report (None when no sync ran), and for each delivery whose user was assigned a
    certificate, the seconds from its delivery to then."""
    waiting = [
        d
        for d in store.deliveries.get(delivery_ids)
        if d.state == "received" and d.user_id is not None
    ]
    if not waiting:
        return None, []
    users = [(d.user_id, d.email) for d in waiting if d.user_id is not None]
    store.users.remember(users)
    # Only the mappings that name these users: a delivery costs a lookup, not a load of all.
    naming = store.mappings.users_naming(users)
    mapped: list[Delivery] = []
    unmapped: list[Delivery] = []
    for d in waiting:
        email = normal_email(d.email) or ""
        by_email = {email: d.user_id} if email and d.user_id is not None else {}
        person = find_person(str(d.user_id), naming, by_email)
        (mapped if person.natecosmic_ids else unmapped).append(d)
    if unmapped:
        log.info("webhook.no_mapping", users=_some(d.user_id for d in unmapped))
        store.deliveries.handled([d.id for d in unmapped], "no-mapping")
    if not mapped:
        return None, []
    report = run_sync(
        settings,
        store,
        clients,
        SyncOptions(
            scope=Scope.of_users([d.user_id for d in mapped if d.user_id is not None]),
            kept_pull_max_age=settings.webhook.pull_max_age,
        ),
        should_stop=should_stop,
    )
    if report.result.stopped or should_stop():
        # Stopped (SIGTERM, or this replica no longer leads): left waiting, so the next
        # leader (or this one after a restart) handles them.
        return report, []
    # Each delivery by its own user's outcome: one user's failed write fails only theirs.
    # A sync that failed as a whole fails them all; the next cycle finds them in the user
    # cache (remembered above) and syncs them, as it does every mapped user.
    failed_users = {u for f in report.result.failures for u in f.user_ids}
    failed = [d for d in mapped if report.error is not None or d.user_id in failed_users]
    applied = [d for d in mapped if d not in failed]
    if failed:
        log.warning("webhook.failed", users=_some(d.user_id for d in failed), error=report.error)
    store.deliveries.handled([d.id for d in failed], "failed", report.run_id)
    store.deliveries.handled([d.id for d in applied], "applied", report.run_id)
    # The metric is delivery to certificates applied: those assigned (or renewed) something.
    given = {a.user_id for a in report.plan.assigns} | {r.user_id for r in report.plan.renewals}
    sent = [d for d in applied if d.user_id in given]
    if not sent:
        return report, []
    now = utcnow()
    waits = [(now - d.received_at).total_seconds() for d in sent]
    log.info(
        "webhook.applied",
        deliveries=[d.id for d in sent],
        run_id=report.run_id,
        seconds=round(max(waits), 3),
    )
    return report, waits


def _some(users: Iterable[int | None], at_most: int = 20) -> list[int | None]:
    """Enough user ids for a log line to be searched by, not a line per group member."""
    return list(itertools.islice(users, at_most))
