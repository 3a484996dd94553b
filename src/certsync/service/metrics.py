"""Prometheus metrics of the daemon, in a registry of its own."""

from __future__ import annotations

import platform
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from certsync.actions import HoldBack, Plan
from certsync.engine.cycle import SyncReport


class Metrics:
    """Every figure `/metrics` shows; fed by the request counter and by each run's report."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.runs = Counter("certsync_runs", "Sync runs by outcome.", ["outcome"], registry=r)
        self.actions = Counter(
            "certsync_actions",
            "Planned actions by kind and outcome.",
            ["kind", "outcome"],
            registry=r,
        )
        self.requests = Counter(
            "certsync_requests",
            "HTTP requests by API, method and status.",
            ["api", "method", "status"],
            registry=r,
        )
        self.retries = Counter(
            "certsync_retries", "Retried HTTP requests by API.", ["api"], registry=r
        )
        self.rate_limited = Counter(
            "certsync_rate_limited", "429 answers received, by API.", ["api"], registry=r
        )
        self.duration = Histogram(
            "certsync_run_duration_seconds",
            "Duration of sync runs.",
            buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800),
            registry=r,
        )
        self.last_success = Gauge(
            "certsync_last_success_timestamp_seconds",
            "Unix time of the last converged sync.",
            registry=r,
        )
        self.owned = Gauge(
            "certsync_owned_holdings", "Holdings certsync issued and owns.", registry=r
        )
        self.unmapped = Gauge(
            "certsync_unmapped_records", "Records without a mapping, last run.", registry=r
        )
        self.held_back = Gauge(
            "certsync_held_back_revocations",
            "Revocations the guard held back, waiting for approve or reject, by reason.",
            ["reason"],
            registry=r,
        )
        self.observe_held_back({})
        self.deliveries = Counter(
            "certsync_webhook_deliveries",
            "Webhook deliveries received, by outcome (accepted, duplicate, bad-signature, "
            "stale, missing-headers, malformed, too-large, ignored).",
            ["outcome"],
            registry=r,
        )
        self.webhook_latency = Histogram(
            "certsync_webhook_to_applied_seconds",
            "Seconds from a webhook delivery to its user's certificates sent.",
            buckets=(0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
            registry=r,
        )
        self.leader = Gauge(
            "certsync_leader",
            "1 while this replica holds the leader lease and runs the cycles, else 0.",
            registry=r,
        )
        self.lease_epoch = Gauge(
            "certsync_lease_epoch",
            "The leader lease's epoch while this replica leads (grows with every new leader).",
            registry=r,
        )
        self.rate_limit_remaining = Gauge(
            "certsync_rate_limit_remaining",
            "Requests left in the API's rate-limit window, as its last answer said.",
            ["api"],
            registry=r,
        )
        self.unmanaged = Gauge(
            "certsync_unmanaged_holdings",
            "Owned holdings whose mapping was removed: kept, not revoked, last run.",
            registry=r,
        )
        self.build = Gauge(
            "certsync_build_info",
            "Always 1; the labels say which certsync and Python run.",
            ["version", "python"],
            registry=r,
        )
        self.build.labels(_version(), platform.python_version()).set(1)
        self.failures = Gauge(
            "certsync_consecutive_failures",
            "Failed runs in a row (drives the backoff).",
            registry=r,
        )

    def observe_request(self, api: str, method: str, status: str) -> None:
        self.requests.labels(api, method, status).inc()
        if status == "429":
            self.rate_limited.labels(api).inc()

    def observe_retry(self, api: str) -> None:
        self.retries.labels(api).inc()

    def observe_held_back(self, by_reason: Mapping[str, int]) -> None:
        # Every guard reason is always there (0 when nothing waits): an alert on "> 0"
        # must find a series, and one that stops waiting must go back to 0.
        for reason in {*_GUARD_REASONS, *by_reason}:
            self.held_back.labels(reason).set(by_reason.get(reason, 0))

    def observe_budget(self, api: str, remaining: float) -> None:
        self.rate_limit_remaining.labels(api).set(remaining)

    def observe_run(
        self, report: SyncReport, *, owned: int | None, finished_at: float, whole: bool = True
    ) -> None:
        """`whole` is false for a sync of some people: it is counted, but it is not the
        successful cycle the last-success timestamp (and its alert) is about."""
        self.runs.labels(report.outcome).inc()
        self.duration.observe(report.duration)
        self.unmapped.set(len(report.plan.unmapped))
        self.unmanaged.set(len(report.plan.unmanaged))
        if owned is not None:
            self.owned.set(owned)
        if report.outcome.succeeded and whole:
            self.last_success.set(finished_at)
        for (kind, outcome), n in action_outcomes(report).items():
            if n:
                self.actions.labels(kind, outcome).inc(n)


_GUARD_REASONS = tuple(h.value for h in HoldBack if h.by_guard)


def _version() -> str:
    try:
        return version("certsync")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def action_outcomes(report: SyncReport) -> dict[tuple[str, str], int]:
    """(kind, outcome) -> pairs: which planned assigns, renewals and revocations went through."""
    plan: Plan = report.plan
    failed_assign: set[tuple[int, int]] = set()
    failed_reset: set[tuple[int, int]] = set()
    for f in report.result.failures:
        target = failed_assign if f.action == "assign" else failed_reset
        target.update((c, u) for c in f.certificate_ids for u in f.user_ids)
    applied = not report.dry_run and report.error is None and report.result.stopped is None
    out: dict[tuple[str, str], int] = {}

    def count(kind: str, pairs: list[tuple[int, int]], failed: set[tuple[int, int]]) -> None:
        bad = sum(1 for p in pairs if p in failed)
        out[(kind, "failed")] = out.get((kind, "failed"), 0) + bad
        out[(kind, "ok" if applied else "planned")] = len(pairs) - bad

    count("assign", [(a.certificate_id, a.user_id) for a in plan.assigns], failed_assign)
    count(
        "renew",
        [(r.certificate_id, r.user_id) for r in plan.renewals],
        failed_assign | failed_reset,
    )
    count("revoke", [(v.certificate_id, v.user_id) for v in plan.revokes], failed_reset)
    out[("revoke", "held_back")] = len(plan.held_back_revokes)
    return out
