"""What a cycle's report shows of its reads, beside its plan: names, warnings, counts."""

from __future__ import annotations

import structlog

from certsync.actions import Plan
from certsync.engine.observation import Observation
from certsync.engine.quiet import QuietRecord, Unchanged
from certsync.engine.report import SyncReport, type_keys
from certsync.models import User
from certsync.store import PullDelta, Store

log = structlog.get_logger("certsync.engine.cycle")


def describe_observation(report: SyncReport, seen: Observation) -> None:
    """What the report shows of the reads, and the warnings they deserve."""
    report.pull_records = len(seen.pull.records)
    log.info("sync.pulled", records=len(seen.pull.records), rejected=len(seen.pull.rejected))
    report.templates_read = sorted(seen.read)
    report.counts_moved = {m.certificate_id: m.listed for m in seen.counts_moved}
    for m in seen.counts_moved:
        log.warning(
            "sync.template_count_moved",
            certificate_id=m.certificate_id,
            active_users_count=m.listed,
            expected_at_least=m.expected[0],
            expected_at_most=m.expected[1],
        )
    _templates(report, seen)


def describe_unchanged(report: SyncReport, seen: Unchanged, kept: QuietRecord) -> None:
    """A quiet cycle's report: the reads it made, and the counts of the plan that stands."""
    report.unchanged_since = kept.run
    report.kept_counts = dict(kept.counts)
    report.pull_records = kept.records
    report.pull_delta = PullDelta(0, 0, 0)
    log.info("sync.unchanged", since_run=kept.run, records=kept.records)
    _templates(report, seen)


def _templates(report: SyncReport, seen: Observation | Unchanged) -> None:
    """What every cycle, quiet or not, reports and warns of its mappings and templates."""
    mapped = set(seen.mappings.template_ids())
    report.unresolved_emails = list(seen.unresolved_emails)
    report.type_keys = type_keys(seen.mappings)
    report.missing_templates = list(seen.missing_templates)
    report.unpublished_templates = list(seen.unpublished_templates)
    report.counts_untrusted = list(seen.counts_untrusted)
    report.template_titles = {
        c: t.title for c, t in seen.templates.items() if c in mapped | set(seen.unmapped_owned)
    }
    for cert in report.missing_templates:
        log.warning(
            "sync.template_missing", certificate_id=cert, mapped_from=report.type_keys.get(cert, [])
        )
    for cert in report.unpublished_templates:
        log.warning(
            "sync.template_unpublished", certificate_id=cert, title=seen.templates[cert].title
        )


def user_labels(store: Store, the_plan: Plan, listed: tuple[User, ...]) -> dict[int, str]:
    """Emails or names of the users a plan shows, from this cycle's list or the user cache."""
    ids = {
        item.user_id
        for items in (
            the_plan.assigns,
            the_plan.renewals,
            the_plan.revokes,
            the_plan.held_back_revokes,
            the_plan.unmanaged,
            the_plan.missing_users,
            the_plan.drift,
        )
        for item in items
    }
    labels = store.users.labels(ids)
    labels.update(
        {u.id: u.email or u.name or "" for u in listed if u.id in ids and (u.email or u.name)}
    )
    return labels
