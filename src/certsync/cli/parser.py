"""The command line: every command and option, each with a description (`docs/cli.md`)."""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path
from typing import Any

from certsync import __version__
from certsync.errors import ConfigError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # a usage error exits 2, as docs/cli.md says
        self.print_usage(sys.stderr)
        raise ConfigError(f"usage: {message}")


_FORMATTER = argparse.ArgumentDefaultsHelpFormatter


def _format(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format",
        choices=["table", "json"],
        default="table",
        help="a table for people, or one JSON document on stdout for scripts",
    )


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1")
    return value


_USER_HELP = "a Natecosmic user id, a Monotree user id (digits) or an email"


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _days(text: str) -> int:
    if not text.isdecimal():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of days")
    return int(text)


def _command(sub: Any, name: str, summary: str, description: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=summary, description=description, formatter_class=_FORMATTER
    )
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="certsync",
        description="Keep Monotree certificates in step with Natecosmic. Settings come from "
        "CERTSYNC_* environment variables (see docs/cli.md and the README).",
    )
    parser.add_argument("--version", action="version", version=f"certsync {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sync = _command(
        sub,
        "sync",
        "run one sync",
        "Pull Natecosmic, read Monotree, plan and apply. Exit 0 converged, 1 some actions "
        "failed, 2 configuration or authentication error, 3 the mass-revoke guard held "
        "revocations back.",
    )
    sync.add_argument("--dry-run", action="store_true", help="make no write call; print the plan")
    sync.add_argument(
        "--full", action="store_true", help="read every holder in Monotree, not what certsync knows"
    )
    _format(sync)
    sync.add_argument(
        "--allow-mass-revoke",
        action="store_true",
        help="apply revocations even past the mass-revoke guard",
    )
    sync.add_argument(
        "--user",
        action="append",
        metavar="USER",
        help=f"sync only this person (repeatable): {_USER_HELP}; "
        "reads the pull and their certificates, nothing else",
    )

    plan = _command(
        sub,
        "plan",
        "what a sync would do; writes nothing",
        "The same as sync --dry-run: no write to either API, and nothing written to the store "
        "(the mapping file is read in memory, no run is recorded).",
    )
    plan.add_argument(
        "--full", action="store_true", help="read every holder in Monotree, not what certsync knows"
    )
    plan.add_argument(
        "--out",
        type=Path,
        metavar="FILE",
        help="also save the plan (and fingerprints of what it was made on) for `certsync apply`",
    )
    _format(plan)

    apply = _command(
        sub,
        "apply",
        "send exactly a plan saved by plan --out",
        "Re-reads what the plan's actions touch and sends exactly those actions; refuses "
        "with exit 2, sending nothing, when any of them is no longer called for (the plan "
        "is stale: run plan again).",
    )
    apply.add_argument("file", type=Path, metavar="FILE", help="a plan saved by plan --out")
    _format(apply)

    approve = _command(
        sub,
        "approve",
        "send revocations the guard held back",
        "Sends the revocations run RUN_ID held back, each checked against fresh state first "
        "(still owned, still active in Monotree, still not held upstream): one that no longer "
        "qualifies is skipped and reported, never revoked.",
    )
    approve.add_argument("run_id", metavar="RUN_ID", help="the run that held them back")
    approve.add_argument(
        "--dry-run", action="store_true", help="check and show what would be sent; send nothing"
    )
    approve.add_argument("--by", metavar="NAME", help="who approves (default: the OS user)")
    _format(approve)
    reject = _command(
        sub,
        "reject",
        "drop revocations the guard held back",
        "Marks run RUN_ID's held-back revocations rejected: none is sent. A later run may "
        "hold them back again.",
    )
    reject.add_argument("run_id", metavar="RUN_ID", help="the run that held them back")
    reject.add_argument("--by", metavar="NAME", help="who rejects (default: the OS user)")

    mappings = _command(
        sub, "mappings", "manage the mapping store", "Load, list and check the mappings."
    )
    msub = mappings.add_subparsers(dest="mappings_command", required=True, parser_class=_Parser)
    imp = _command(
        msub,
        "import",
        "load a mapping file into the store",
        "Upsert the file's types, users and policy into the store.",
    )
    imp.add_argument("file", type=Path, help="the mapping file (TOML, see docs/mappings.md)")
    imp.add_argument(
        "--prune", action="store_true", help="also remove mappings the file no longer names"
    )
    lst = _command(
        msub, "list", "list the mappings in the store", "The policy, types and users in the store."
    )
    _format(lst)
    _command(
        msub,
        "check",
        "check every mapping against both APIs",
        "Templates exist and are published, types appear upstream, users exist, emails resolve.",
    )

    sug = _command(
        msub,
        "suggest",
        "propose a template for each unmapped type",
        "Reads the pull and Monotree's templates and proposes, for each type no mapping "
        "names, the template whose title is most alike, with a score and the runner-up. "
        "Never changes the store; `--create-missing` creates draft templates in Monotree.",
    )
    sug.add_argument(
        "--format",
        choices=["table", "json", "toml"],
        default="table",
        help="a table, one JSON document, or mapping entries to paste (unsure ones commented)",
    )
    sug.add_argument(
        "--confident",
        type=_fraction,
        default=0.8,
        help="a suggestion is confident from this score (0 to 1; default 0.8)",
    )
    sug.add_argument(
        "--margin",
        type=_fraction,
        default=0.1,
        help="and when it beats the runner-up by this much (default 0.1)",
    )
    sug.add_argument(
        "--create-below",
        type=_fraction,
        default=0.5,
        help="--create-missing creates a template when no title scores this much (default 0.5)",
    )
    sug.add_argument(
        "--create-missing",
        action="store_true",
        help="create a draft template in Monotree for each type nothing comes close to",
    )
    sug.add_argument(
        "--dry-run",
        action="store_true",
        help="with --create-missing: say which templates would be created, create none",
    )

    db = _command(sub, "db", "the store's schema", "Migrations of the store (Alembic).")
    dsub = db.add_subparsers(dest="db_command", required=True, parser_class=_Parser)
    _command(
        dsub,
        "upgrade",
        "bring the store to this certsync's schema",
        "Upgrade the store at CERTSYNC_DATABASE_URL to the latest schema, under the writer "
        "lock (a sync or the daemon does the same before its first write).",
    )
    copy = _command(
        dsub,
        "copy",
        "copy the whole store into a new database",
        "Copy every mapping, ownership record, journal entry and run from the store at "
        "CERTSYNC_DATABASE_URL into an empty database (moving from SQLite to PostgreSQL), "
        "under both writer locks, in one transaction. Stop the daemon first; then point "
        "CERTSYNC_DATABASE_URL at the new store.",
    )
    copy.add_argument(
        "--to", required=True, metavar="URL", help="the new store, e.g. postgresql://user@host/db"
    )
    copy.add_argument(
        "--to-password-file",
        type=Path,
        metavar="PATH",
        help="the new store's password, read from this file (never put it in the URL)",
    )

    expl = _command(
        sub,
        "explain",
        "why one person has (or lacks) each certificate",
        "For one user: each Natecosmic record and each Monotree certificate, the mapping used, "
        "whether the record counts as held (and which field says not), who issued the "
        "certificate, and what the next sync would do and why. Writes nothing.",
    )
    expl.add_argument("user", metavar="USER", help=_USER_HELP)
    expl.add_argument(
        "--from-snapshot",
        action="store_true",
        help="use the pull the last sync kept instead of pulling again (no request to Natecosmic)",
    )
    _format(expl)

    history = _command(
        sub,
        "history",
        "what certsync did for one person",
        "Every assign, renewal and revocation certsync sent for one user, from the journal.",
    )
    history.add_argument("--user", required=True, metavar="USER", help=_USER_HELP)
    history.add_argument(
        "--since", type=_day, metavar="DATE", help="only from this day on (YYYY-MM-DD, UTC)"
    )
    _format(history)

    journal = _command(
        sub, "journal", "the journal's retention", "Keep the store bounded: prune old runs."
    )
    jsub = journal.add_subparsers(dest="journal_command", required=True, parser_class=_Parser)
    prune = _command(
        jsub,
        "prune",
        "drop the journal of old runs",
        "Delete the journal entries and audit items of finished runs that started more than "
        "DAYS days ago. Ownership is never pruned.",
    )
    prune.add_argument(
        "--older-than", type=_days, required=True, metavar="DAYS", help="age in whole days"
    )

    status = _command(
        sub, "status", "recent runs and their outcomes", "Recent runs, from the store's journal."
    )
    status.add_argument("--limit", type=int, default=10, help="how many runs to show")
    _format(status)

    sandbox = _command(
        sub,
        "sandbox",
        "serve local simulators of both APIs",
        "Serve simulators of Natecosmic and Monotree with a generated world, and write a "
        "mapping file that fits it. Ctrl-C stops them.",
    )
    sandbox.add_argument("--host", default="127.0.0.1", help="address to listen on")
    sandbox.add_argument(
        "--natecosmic-port", type=int, default=8001, help="port of the Natecosmic simulator"
    )
    sandbox.add_argument(
        "--monotree-port", type=int, default=8002, help="port of the Monotree simulator"
    )
    sandbox.add_argument("--users", type=int, default=20, help="people in the generated world")
    sandbox.add_argument(
        "--types", type=int, default=3, help="certification types (and templates) to generate"
    )
    sandbox.add_argument("--seed", type=int, default=1, help="random seed: the same world again")
    sandbox.add_argument(
        "--mappings-out",
        type=Path,
        default=Path("sandbox-mappings.toml"),
        help="where to write the mapping file that fits the generated world",
    )
    sandbox.add_argument(
        "--rate-limit", type=int, default=60, help="Monotree requests a minute; 0 turns it off"
    )
    sandbox.add_argument(
        "--no-etags",
        action="store_true",
        help="serve the certifications without an ETag (no If-None-Match)",
    )
    sandbox.add_argument(
        "--no-last-modified",
        action="store_true",
        help="serve the certifications without a Last-Modified (no If-Modified-Since)",
    )
    sandbox.add_argument("--latency", type=float, default=0.0, help="seconds added to each answer")
    sandbox.add_argument(
        "--error-rate", type=float, default=0.0, help="share of answers that are 429, 500 or 503"
    )
    sandbox.add_argument(
        "--drop-rate", type=float, default=0.0, help="share of connections dropped"
    )
    sandbox.add_argument("--slow-rate", type=float, default=0.0, help="share of slow answers")
    sandbox.add_argument(
        "--slow-seconds", type=float, default=5.0, help="how slow a slow answer is, in seconds"
    )
    _command(
        sub,
        "demo",
        "a demo sync against the built-in sandbox",
        "Start the sandbox, sync, change things upstream, sync again; in a temporary folder.",
    )
    _command(
        sub,
        "run",
        "the long-running daemon",
        "Sync on a schedule (CERTSYNC_SCHEDULE__INTERVAL or __CRON), the first cycle full. "
        "Serves /healthz, /readyz and /metrics on CERTSYNC_HTTP__HOST:CERTSYNC_HTTP__PORT. "
        "A failed cycle leaves the daemon up but not ready, and is retried after 1, 2, 4 ... "
        "seconds (at most CERTSYNC_SCHEDULE__MAX_BACKOFF). SIGTERM or SIGINT stop it after "
        "the request in flight.",
    )
    health = _command(
        sub,
        "healthcheck",
        "exit 0 if the local daemon answers /healthz",
        "What the container's HEALTHCHECK runs: asks the daemon on CERTSYNC_HTTP__PORT.",
    )
    health.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for an answer")
    return parser
