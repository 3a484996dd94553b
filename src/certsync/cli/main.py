"""The `certsync` command: parses arguments, builds settings, calls sync, daemon or sandbox.

Anything a user can cause ends in one `certsync: error: ...` line on stderr and
the exit code `docs/cli.md` gives it; never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import TextIO, cast

import httpx
import structlog

from certsync import cyclic_gc, heap
from certsync import logging as certsync_logging
from certsync.cli import exit_codes
from certsync.cli.audit import cmd_history, cmd_journal
from certsync.cli.checks import check_mappings
from certsync.cli.exit_codes import (
    EXIT_BROKEN_PIPE,
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
)
from certsync.cli.parser import build_parser
from certsync.cli.render import write_report
from certsync.cli.review import cmd_apply, cmd_approve, cmd_reject, save_plan
from certsync.cli.terminal import StatusLine
from certsync.cli.users import NobodyToSyncError, find_people, why_not_synced
from certsync.engine.counts import untrusted
from certsync.engine.cycle import SyncOptions, open_clients, run_sync
from certsync.engine.scope import Scope
from certsync.errors import CertsyncError, ConfigError, LockBusyError
from certsync.mappings_file import load_mapping_file
from certsync.redaction import Redactor
from certsync.settings import Settings, check_config, load_command_settings
from certsync.store import MEMORY_URL, Store, database_password, no_store_yet, open_store

log = structlog.get_logger("certsync.cli.main")


def _status_line(
    args: argparse.Namespace, settings: Settings, redactor: Redactor
) -> StatusLine | None:
    """On a terminal, a progress line; logs then go through it and only warnings show,
    unless CERTSYNC_LOG_LEVEL=debug asks for everything."""
    if args.format != "table" or not sys.stderr.isatty():
        return None
    status = StatusLine(sys.stderr)
    level = "debug" if settings.log_level == "debug" else "warning"
    if settings.log_level == "error":
        level = "error"
    # PrintLogger only calls write, flush and isatty, which StatusLine provides.
    certsync_logging.configure(
        settings.log_format, level, stream=cast(TextIO, status), redactor=redactor
    )
    return status


def cmd_sync(args: argparse.Namespace, settings: Settings, out: TextIO, redactor: Redactor) -> int:
    check_config(settings)
    dry_run = args.command == "plan" or args.dry_run
    # A dry run writes nothing, not even a new store file: with none yet, it plans
    # against an empty store in memory (nothing owned, nothing read before).
    store = open_store(settings, MEMORY_URL if dry_run and no_store_yet(settings) else None)
    status = None
    try:
        scope = Scope()
        if getattr(args, "user", None):
            scope = _user_scope(settings, store, args.user)
        status = _status_line(args, settings, redactor)
        with open_clients(settings, redactor=redactor) as clients:
            report = run_sync(
                settings,
                store,
                clients,
                SyncOptions(
                    dry_run=dry_run,
                    force_full=args.full,
                    allow_mass_revoke=getattr(args, "allow_mass_revoke", False),
                    scope=scope,
                    digests=getattr(args, "out", None) is not None,
                ),
                progress=status.show if status is not None else None,
            )
    except LockBusyError as exc:
        if not getattr(args, "user", None):
            raise
        raise LockBusyError(
            f"{exc} A running daemon syncs one person on request: POST /runs with "
            '{"users": [...]} on its listener (docs/cli.md, "On demand").'
        ) from None
    finally:
        if status is not None:
            status.clear()
        store.close()
    if getattr(args, "out", None) is not None and report.error is None:
        save_plan(args.out, report)
    write_report(report, args.format, out)
    if args.format != "json" and getattr(args, "out", None) is not None and report.error is None:
        out.write(f"Saved to {args.out}: `certsync apply {args.out}` sends exactly this.\n")
    return exit_codes.for_report(report)


def _user_scope(settings: Settings, store: Store, asked: list[str]) -> Scope:
    people = find_people(settings, store, asked)
    for person in people:
        if person.monotree_id is None:
            log.warning("sync.user_not_synced", reason=why_not_synced(person))
    ids = {p.monotree_id for p in people if p.monotree_id is not None}
    if not ids:
        raise NobodyToSyncError("; ".join(why_not_synced(p) for p in people))
    return Scope.of_users(ids)


def cmd_mappings(
    args: argparse.Namespace, settings: Settings, out: TextIO, redactor: Redactor
) -> int:
    if args.mappings_command == "import":
        mapping_file = load_mapping_file(args.file)
        store = open_store(settings)
        try:
            with store.lock.held(
                timeout=settings.sync.lock_timeout, what=f"the store {store.shown}"
            ):
                store.upgrade()
                summary = store.mappings.import_file(mapping_file, prune=args.prune)
        finally:
            store.close()
        out.write(
            f"imported {args.file}: types +{summary.types_added} ~{summary.types_updated}"
            f" -{summary.types_pruned}, users +{summary.users_added} ~{summary.users_updated}"
            f" -{summary.users_pruned}, {summary.unchanged} unchanged"
            + (", policy updated" if summary.policy_changed else "")
            + (f"; pruned {summary.types_pruned + summary.users_pruned}" if args.prune else "")
            + "\n"
        )
        return EXIT_OK
    if args.mappings_command == "suggest":
        return _later("certsync.cli.suggest", "cmd_suggest")(args, settings, out, redactor)
    if args.mappings_command == "list":
        store = open_store(settings)
        try:
            types, users, policy = (
                store.mappings.types(),
                store.mappings.users(),
                store.mappings.policy(),
            )
        finally:
            store.close()
        if args.format == "json":
            doc = {
                "policy": asdict(policy),
                "types": [asdict(t) for t in types],
                "users": [asdict(u) for u in users],
            }
            json.dump(doc, out, indent=2)
            out.write("\n")
            return EXIT_OK
        out.write(f"policy: {', '.join(f'{k}={v}' for k, v in asdict(policy).items())}\n")
        out.write(f"types ({len(types)}):\n")
        for t in types:
            flag = "  authoritative" if t.authoritative else ""
            out.write(f"  {t.natecosmic} -> template {t.monotree}{flag}\n")
        out.write(f"users ({len(users)}):\n")
        for u in users:
            target = f"user {u.monotree}" if u.monotree is not None else f"email {u.monotree_email}"
            out.write(f"  {u.natecosmic} -> {target}\n")
        return EXIT_OK
    return check_mappings(settings, out, redactor)


def cmd_db(args: argparse.Namespace, settings: Settings, out: TextIO, redactor: Redactor) -> int:
    if args.db_command == "copy":
        return _copy_store(args, settings, out)
    store = open_store(settings)
    try:
        with store.lock.held(timeout=settings.sync.lock_timeout, what=f"the store {store.shown}"):
            moved = store.upgrade()
        now = store.schema_revision()
    finally:
        store.close()
    if moved is None:
        out.write(f"the store is at the latest schema ({now})\n")
    else:
        out.write(f"upgraded the store from {moved[0]} to {moved[1]}\n")
    return EXIT_OK


def _copy_store(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    password = None
    if args.to_password_file is not None:
        password = database_password(
            settings.model_copy(update={"database_password_file": args.to_password_file})
        )
    source = open_store(settings)
    try:
        target = Store(args.to, lock_lease_seconds=settings.lease.duration, password=password)
        try:
            wait = settings.sync.lock_timeout
            with (
                source.lock.held(timeout=wait, what=f"the store {source.shown}"),
                target.lock.held(timeout=wait, what=f"the store {target.shown}"),
            ):
                if source.upgrade() is not None:  # an older store reaches the schema first
                    out.write("upgraded the source store to the latest schema\n")
                copied = source.copy_to(target)
            shown = target.shown
        finally:
            target.close()
    finally:
        source.close()
    for table, n in copied.items():
        out.write(f"{n:>9,}  {table}\n")
    out.write(
        f"copied {sum(copied.values()):,} rows to {shown}; point CERTSYNC_DATABASE_URL at it "
        "and start certsync there\n"
    )
    return EXIT_OK


def cmd_status(
    args: argparse.Namespace, settings: Settings, out: TextIO, redactor: Redactor
) -> int:
    store = open_store(settings)
    try:
        runs = store.journal.recent_runs(args.limit)
        held = store.held.pending()
        leader = store.leader.holder()
        states = store.holdings.template_states()
        mapped = {t.monotree for t in store.mappings.types()}
    finally:
        store.close()
    not_counted = untrusted(states, mapped)
    waiting = {h.run_id: h for h in held}
    if args.format == "json":
        docs = [
            {
                **asdict(r),
                "held_back_waiting": len(waiting[r.id].revokes) if r.id in waiting else 0,
            }
            for r in runs
        ]
        json.dump(docs, out, indent=2, default=str)
        out.write("\n")
        return EXIT_OK
    if leader is None:
        out.write("leader: none (no `certsync run` holds the leader lease)\n")
    else:
        out.write(
            f"leader: {leader.describe()}, epoch {leader.epoch}, "
            f"lease renewed {leader.age:.0f}s ago\n"
        )
    if not runs:
        out.write("no runs yet\n")
        return EXIT_OK
    out.write(f"{'run':16}  {'kind':11}  {'started (UTC)':19}  {'outcome':11}  summary\n")
    for r in runs:
        summary = ", ".join(
            f"{k} {v}"
            for k, v in r.counts.items()
            if v and k in ("assign", "renew", "revoke", "held_back", "failed_requests")
        )
        out.write(
            f"{r.id:16}  {r.kind:11}  {r.started_at:%Y-%m-%d %H:%M:%S}  "
            f"{r.outcome or 'running':11}  {summary or '-'}"
            + (f"  error: {r.error}" if r.error else "")
            + "\n"
        )
    if not_counted:
        out.write(
            f"drift check off for {len(not_counted)} template(s) "
            f"({', '.join(map(str, not_counted))}): Monotree's active_users_count did not "
            "match the holders read in full last time (or was not checked yet: it is at the "
            "next full read), so a change "
            "made by hand there is found by the next full cycle\n"
        )
    for h in held:
        out.write(
            f"waiting for a decision: {len(h.revokes)} revocation(s) held back by run "
            f"{h.run_id} ({h.reason}); `certsync approve {h.run_id}` or "
            f"`certsync reject {h.run_id}`\n"
        )
    return EXIT_OK


def cmd_healthcheck(
    args: argparse.Namespace, settings: Settings, out: TextIO, redactor: Redactor
) -> int:
    """What the container's HEALTHCHECK runs: no curl needed, only certsync itself."""
    if not settings.http.port:
        raise ConfigError("CERTSYNC_HTTP__PORT is 0: the health listener is off")
    host = settings.http.host
    host = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host  # noqa: S104 - a listen-all address
    url = f"http://{host}:{settings.http.port}/healthz"
    try:
        response = httpx.get(url, timeout=args.timeout)
    except httpx.HTTPError as exc:
        out.write(f"unhealthy: {url}: {type(exc).__name__}\n")
        return EXIT_FAILED
    verdict = "healthy" if response.status_code == 200 else "unhealthy"
    out.write(f"{verdict}: {url} {response.status_code}\n")
    return EXIT_OK if response.status_code == 200 else EXIT_FAILED


Command = Callable[[argparse.Namespace, Settings, TextIO, Redactor], int]


def _later(module: str, name: str) -> Command:
    """A command imported when it runs, so that what only it needs is not loaded for the
    others: the web stack of `cli.servers` (about a fifth of a command's start-up), the
    explanation and the title matcher (a twentieth between them)."""

    def command(args: argparse.Namespace, settings: Settings, out: TextIO, r: Redactor) -> int:
        run: Command = getattr(importlib.import_module(module), name)
        return run(args, settings, out, r)

    return command


_COMMANDS: dict[str, Command] = {
    "sync": cmd_sync,
    "plan": cmd_sync,
    "mappings": cmd_mappings,
    "status": cmd_status,
    "history": cmd_history,
    "approve": cmd_approve,
    "reject": cmd_reject,
    "apply": cmd_apply,
    "explain": _later("certsync.cli.explain", "cmd_explain"),
    "journal": cmd_journal,
    "db": cmd_db,
    "sandbox": _later("certsync.cli.servers", "cmd_sandbox"),
    "demo": _later("certsync.cli.servers", "cmd_demo"),
    "run": _later("certsync.cli.servers", "cmd_run"),
    "healthcheck": cmd_healthcheck,
}


def main(argv: Sequence[str] | None = None) -> int:
    # One per run: the clients register every token they read, the logger and the
    # error lines below hide them.
    redactor = Redactor()
    heap.tune_allocator()
    cyclic_gc.keep_what_imports_built()
    try:
        args = build_parser().parse_args(argv)
        needs_apis = args.command in ("sync", "plan", "run", "explain", "approve", "apply") or (
            args.command == "mappings" and args.mappings_command in ("check", "suggest")
        )
        settings = load_command_settings(needs_apis=needs_apis)
        certsync_logging.configure(settings.log_format, settings.log_level, redactor=redactor)
        for notice in settings.notices:
            log.warning("settings.corrected", notice=notice)
        return _COMMANDS[args.command](args, settings, sys.stdout, redactor)
    except CertsyncError as exc:
        sys.stderr.write(f"certsync: error: {redactor(str(exc))}\n")
        return exit_codes.for_error(exc)
    except KeyboardInterrupt:
        sys.stderr.write("certsync: interrupted\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader left (`certsync status | head -1`): stop quietly, as a command
        # killed by SIGPIPE would, and keep the interpreter from complaining at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except SystemExit as exc:  # --help and --version
        return int(exc.code or 0) if isinstance(exc.code, int) else EXIT_CONFIG
    except Exception as exc:
        log.debug("cli.internal_error", exc_info=True)
        message = redactor(f"{type(exc).__name__}: {exc}")
        sys.stderr.write(
            f"certsync: internal error: {message} (CERTSYNC_LOG_LEVEL=debug shows where)\n"
        )
        return EXIT_FAILED
