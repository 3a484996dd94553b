"""A sync report as a table for people and as one JSON document for scripts."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from typing import Any, TextIO

from certsync.cli import exit_codes
from certsync.engine.report import SyncReport

_SHOW = 10  # rows of each list shown on a terminal; JSON has them all


def requests_by_api(counts: dict[str, int]) -> dict[str, int]:
    totals: Counter[str] = Counter()
    for key, n in counts.items():
        totals[key.split(" ", 1)[0]] += n
    return dict(sorted(totals.items()))


Rows = Callable[[Sequence[Any]], list[dict[str, Any]]]


def _dicts(items: Sequence[Any]) -> list[dict[str, Any]]:
    return [asdict(i) for i in items]


class _Streamed(list[dict[str, Any]]):
    """Plan items made JSON objects one at a time, as `json.dump` writes them: the
    100,000 assigns of a first full cycle are never all dicts at once (6 MiB at its
    peak). For `json.dump` only: its encoder iterates a list, where `json.dumps` would
    read the empty one beneath."""

    def __init__(self, items: Sequence[Any]) -> None:
        super().__init__()
        self._items = items

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (asdict(i) for i in self._items)


def to_json(report: SyncReport, rows: Rows = _dicts) -> dict[str, Any]:
    """The report as one JSON document; `rows` makes the plan's lists of items."""
    p = report.plan
    return {
        "run_id": report.run_id,
        "kind": report.kind,
        "dry_run": report.dry_run,
        "outcome": report.outcome,
        "exit_code": exit_codes.for_report(report),
        "error": report.error,
        "duration_seconds": round(report.duration, 3),
        "timings": report.timings,
        "counts": report.counts(),
        "unchanged_since": report.unchanged_since,
        "decided_again_for": report.decided_again,
        "pull": {
            "records": report.pull_records,
            "since_last": None if report.pull_delta is None else report.pull_delta.counts(),
        },
        "plan": {
            "assign": rows(p.assigns),
            "renew": rows(p.renewals),
            "revoke": rows(p.revokes),
            "held_back": {"reason": p.held_back_reason, "revoke": rows(p.held_back_revokes)},
            "drift": rows(p.drift),
            "kept_newer": rows(p.kept_newer),
            "unmapped": rows(p.unmapped),
            "missing_users": rows(p.missing_users),
            "rejected": rows(p.rejected),
            "unmanaged": rows(p.unmanaged),
        },
        "held_plan": report.held_plan,
        "skipped": [asdict(s) for s in report.skipped],
        "digests": report.digests,
        "write_requests": [r.summary() for r in report.requests],
        "failures": [asdict(f) for f in report.result.failures],
        "missing_templates": report.missing_templates,
        "unpublished_templates": report.unpublished_templates,
        "unresolved_emails": report.unresolved_emails,
        "names": {
            "templates": {str(k): v for k, v in sorted(report.template_titles.items())},
            "users": {str(k): v for k, v in sorted(report.user_labels.items())},
        },
        "summary": summary_lines(report),
        "templates_read": report.templates_read,
        "counts_moved": {str(k): v for k, v in sorted(report.counts_moved.items())},
        "counts_untrusted": report.counts_untrusted,
        "requests": report.request_counts,
        "requests_by_api": requests_by_api(report.request_counts),
    }


def _rows(title: str, items: list[str]) -> list[str]:
    if not items:
        return []
    lines = [f"{title}:"]
    lines += [f"  {item}" for item in items[:_SHOW]]
    if len(items) > _SHOW:
        lines.append(f"  ... and {len(items) - _SHOW} more (see --format json)")
    return lines


def summary_lines(report: SyncReport) -> list[str]:
    """Two lines in the spirit of Terraform's: what the plan holds, then what became of it."""
    c = report.counts()
    plan = (
        f"Plan: {c['assign']} to assign, {c['renew']} to renew, {c['revoke']} to revoke, "
        f"{c['unmanaged']} unmanaged."
    )
    if c["held_back"]:
        plan = plan[:-1] + f", {c['held_back']} held back."
    total = sum(report.request_counts.values())
    if report.error is not None:
        done = f"Failed after {total} request(s): see the error above."
    elif report.dry_run:
        done = f"Dry run: nothing written ({total} read request(s))."
    elif c["failed_requests"]:
        sent = c["write_requests"] - c["failed_requests"]
        done = (
            f"Applied {sent} of {c['write_requests']} write request(s); "
            f"{c['failed_requests']} failed, in {total} request(s)."
        )
    elif not c["write_requests"] and report.outcome == "converged" and not c["unmanaged"]:
        done = f"No changes: Monotree matches Natecosmic ({total} request(s))."
    elif not c["write_requests"]:
        done = f"Nothing applied ({total} request(s))."
    else:
        done = f"Applied in {total} request(s)."
    if report.error is None and report.missing_templates:
        done += (
            f" {len(report.missing_templates)} mapped template(s) missing in Monotree: "
            "fix their type mapping."
        )
    return [plan, done]


def render_table(report: SyncReport) -> str:
    names = _Names(report)
    cert, user = names.template, names.user
    p = report.plan
    mode = " (dry run: nothing written)" if report.dry_run else ""
    if report.error is None and not report.dry_run:
        mode = " (applied)"
    what = report.kind if report.kind in ("approve", "apply") else f"{report.kind} sync"
    lines = [f"certsync {what} {report.run_id}: {report.outcome}{mode}"]
    if report.error:
        lines.append(f"error: {report.error}")
    if report.unchanged_since is not None:
        lines.append(
            f"unchanged since run {report.unchanged_since}: same pull, mappings, templates "
            "and day, so no new plan"
        )
    if report.decided_again == 0:
        lines.append("no one's records, mappings or certificates moved: the kept plan stands")
    elif report.decided_again is not None:
        lines.append(
            f"decided again for {report.decided_again} person(s) a change touched; "
            "everyone else's part of the plan stands"
        )
    counts = {k: v for k, v in report.counts().items() if v}
    lines.append("")
    if counts:
        width = max(len(k) for k in counts)
        lines.append(f"{'action'.ljust(width)}  count")
        lines.append(f"{'-' * width}  -----")
        lines += [f"{k.ljust(width)}  {v:5d}" for k, v in counts.items()]
    else:
        lines.append("nothing to do")
    lines.append("")
    lines += _rows(
        "assign",
        [
            f"{cert(a.certificate_id)} -> {user(a.user_id)} as of {a.completed_at}"
            for a in p.assigns
        ],
    )
    lines += _rows(
        "renew (reset, then assign)",
        [
            f"{cert(r.certificate_id)} {user(r.user_id)}: "
            f"{r.previous_issued_on} -> {r.completed_at}"
            for r in p.renewals
        ],
    )
    lines += _rows(
        "revoke",
        [
            f"{cert(v.certificate_id)} {user(v.user_id)}"
            + ("" if v.owned else " (authoritative mapping)")
            + (" (mapping removed; revoke_unmapped)" if v.unmapped else "")
            for v in p.revokes
        ],
    )
    if p.held_back_revokes:
        lines.append(f"held back: {len(p.held_back_revokes)} revocation(s): {p.held_back_reason}")
    if report.held_plan:
        lines.append(
            f"  kept for review: `certsync approve {report.held_plan}` sends exactly these "
            f"(each checked again first); `certsync reject {report.held_plan}` drops them"
        )
    lines += _rows(
        "skipped (reviewed, but no longer called for; not sent)",
        [f"{s.action} {cert(s.certificate_id)} {user(s.user_id)}: {s.why}" for s in report.skipped],
    )
    lines += _rows(
        "unmanaged (owned, mapping removed; kept: set revoke_unmapped to revoke)",
        [
            f"{cert(u.certificate_id)} {user(u.user_id)}: no {u.reason} mapping any more"
            for u in p.unmanaged
        ],
    )
    lines += _rows(
        "drift (report only)",
        [
            f"{cert(d.certificate_id)} {user(d.user_id)}: Monotree expires "
            f"{d.monotree_expires_on}, Natecosmic {d.natecosmic_expires_on}"
            for d in p.drift
        ],
    )
    unmapped = Counter((u.kind, u.key) for u in p.unmapped)
    lines += _rows(
        "unmapped",
        [f"no mapping for {kind} {key!r}: {n} record(s)" for (kind, key), n in unmapped.items()],
    )
    lines += _rows(
        "rejected records",
        [f"#{r.index} {r.record_id or '(no id)'}: {r.reason}" for r in p.rejected],
    )
    lines += _rows(
        "missing Monotree users",
        [f"{user(m.user_id)} ({cert(m.certificate_id)})" for m in p.missing_users],
    )
    lines += _rows(
        "missing templates (deleted in Monotree? fix the type mapping)",
        [f"template {c} {names.mapped_from(c)}" for c in report.missing_templates],
    )
    lines += _rows(
        "unpublished templates (drafts in Monotree)",
        [f"{cert(c)} {names.mapped_from(c)}" for c in report.unpublished_templates],
    )
    lines += _rows("unresolved emails", report.unresolved_emails)
    lines += _rows(
        "changed in Monotree by someone else (its count of holders moved): read in full",
        [f"{cert(c)}: {n} active holder(s)" for c, n in sorted(report.counts_moved.items())],
    )
    lines += _rows(
        "failures",
        [
            f"{f.action} certificate(s) {', '.join(map(str, f.certificate_ids))} "
            f"({len(f.user_ids)} user(s)), {f.outcome}: {f.error}"
            for f in report.result.failures
        ],
    )
    by_api = requests_by_api(report.request_counts)
    lines.append(
        "requests: "
        + (", ".join(f"{api} {n}" for api, n in by_api.items()) or "none")
        + f" in {report.duration:.2f}s"
    )
    lines.append("")
    lines += summary_lines(report)
    return "\n".join(lines)


class _Names:
    """Ids with the names certsync knows beside them: titles, emails, mapped type keys."""

    def __init__(self, report: SyncReport) -> None:
        self._report = report

    def template(self, cert: int) -> str:
        title = self._report.template_titles.get(cert)
        return f"template {cert} {title!r}" if title else f"template {cert}"

    def user(self, user: int) -> str:
        label = self._report.user_labels.get(user)
        return f"user {user} ({label})" if label else f"user {user}"

    def mapped_from(self, cert: int) -> str:
        keys = self._report.type_keys.get(cert, [])
        return f"(mapped from {', '.join(repr(k) for k in keys)})" if keys else ""


def write_report(report: SyncReport, fmt: str, out: TextIO) -> None:
    """The report as the person asked for it: one JSON document, or the table."""
    if fmt == "json":
        json.dump(to_json(report, rows=_Streamed), out, indent=2, default=str)
        out.write("\n")
    else:
        out.write(render_table(report) + "\n")
