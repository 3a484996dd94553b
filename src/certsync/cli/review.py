"""Sending only what a person reviewed: `approve` and `reject` held-back revocations,
`plan --out` to save a plan and `apply` to send exactly it."""

from __future__ import annotations

import argparse
import getpass
import json
from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TextIO

from certsync import __version__
from certsync.actions import Revoke
from certsync.cli import exit_codes
from certsync.cli.render import write_report
from certsync.clients.session import open_clients
from certsync.engine.approval import approve_held, reject_held
from certsync.engine.cycle import run_sync
from certsync.engine.report import SyncOptions, SyncReport
from certsync.engine.review import Reviewed
from certsync.engine.scope import Scope
from certsync.errors import ConfigError
from certsync.redaction import Redactor
from certsync.settings import Settings, check_config
from certsync.store import open_store

_SAVED_FORMAT = 1


def decider(name: str | None) -> str:
    """Who decides: `--by NAME`, else the account running certsync."""
    if name:
        return name
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no such user in a bare container
        return "unknown"


def cmd_approve(args: argparse.Namespace, settings: Settings, out: TextIO, r: Redactor) -> int:
    check_config(settings)
    store = open_store(settings)
    try:
        store.held.open_for_decision(args.run_id)  # an unknown id fails before any request
        with open_clients(settings, redactor=r) as clients:
            report = approve_held(
                settings,
                store,
                clients,
                args.run_id,
                by=decider(args.by),
                dry_run=args.dry_run,
            )
    finally:
        store.close()
    write_report(report, args.format, out)
    return exit_codes.for_report(report)


def cmd_reject(args: argparse.Namespace, settings: Settings, out: TextIO, r: Redactor) -> int:
    store = open_store(settings)
    try:
        held = reject_held(settings, store, args.run_id, by=decider(args.by))
    finally:
        store.close()
    out.write(
        f"rejected the {len(held.revokes)} held-back revocation(s) of run {args.run_id}; "
        "none is sent, and the next run may hold them back again\n"
    )
    return exit_codes.EXIT_OK


# --- saved plans --------------------------------------------------------------------


def save_plan(path: Path, report: SyncReport) -> None:
    p = report.plan
    document = {
        "format": _SAVED_FORMAT,
        "certsync": __version__,
        "made_at": datetime.now(UTC).isoformat(),
        "digests": report.digests,
        "assign": [[a.certificate_id, a.user_id, a.completed_at.isoformat()] for a in p.assigns],
        "renew": [
            [
                r.certificate_id,
                r.user_id,
                r.completed_at.isoformat(),
                r.previous_issued_on.isoformat(),
            ]
            for r in p.renewals
        ],
        "revoke": [[v.certificate_id, v.user_id, v.owned, v.unmapped] for v in p.revokes],
    }
    try:
        path.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--out {path}: cannot write it: {exc.strerror}") from None


def load_plan(path: Path) -> tuple[Reviewed, Mapping[str, str]]:
    try:
        document: Any = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it: {exc.strerror}") from None
    except ValueError:
        raise ConfigError(f"{path}: not a plan saved by `certsync plan --out` (not JSON)") from None
    if not isinstance(document, dict) or document.get("format") != _SAVED_FORMAT:
        raise ConfigError(f"{path}: not a plan saved by this certsync's `plan --out`")
    try:
        reviewed = Reviewed(
            "apply",
            frozenset(
                (int(c), int(u), date.fromisoformat(d).isoformat())
                for c, u, d in document["assign"]
            ),
            frozenset(
                (
                    int(c),
                    int(u),
                    date.fromisoformat(d).isoformat(),
                    date.fromisoformat(p).isoformat(),
                )
                for c, u, d, p in document["renew"]
            ),
            frozenset(
                Revoke(int(c), int(u), bool(o), bool(m)) for c, u, o, m in document["revoke"]
            ),
        )
    except (KeyError, TypeError, ValueError):
        raise ConfigError(
            f"{path}: a saved plan with a damaged action list; run plan again"
        ) from None
    return reviewed, document.get("digests", {})


def cmd_apply(args: argparse.Namespace, settings: Settings, out: TextIO, r: Redactor) -> int:
    check_config(settings)
    reviewed, saved_digests = load_plan(args.file)
    store = open_store(settings)
    try:
        with open_clients(settings, redactor=r) as clients:
            report = run_sync(
                settings,
                store,
                clients,
                SyncOptions(
                    scope=Scope.of_templates(reviewed.templates), review=reviewed, digests=True
                ),
            )
    finally:
        store.close()
    write_report(report, args.format, out)
    if args.format != "json" and report.error is None:
        same = report.digests and report.digests == dict(saved_digests)
        out.write(
            "state unchanged since the plan was made\n"
            if same
            else "state changed since the plan was made; none of it touches the plan's actions\n"
        )
    return exit_codes.for_report(report)
