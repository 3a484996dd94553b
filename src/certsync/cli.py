"""The `certsync` command: parses arguments, builds settings, calls sync, daemon or sandbox.

Anything a user can cause ends in one `certsync: error: ...` line on stderr and
the exit code SPEC.md gives it; never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO

import httpx
import structlog
from sqlalchemy.exc import SQLAlchemyError

from certsync import __version__
from certsync import logging as certsync_logging
from certsync.checks import check_mappings
from certsync.daemon import run_daemon
from certsync.demo import run_demo
from certsync.errors import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, CertsyncError, ConfigError
from certsync.http import REDACTOR
from certsync.mappings_file import load_mapping_file
from certsync.report import render_table, to_json
from certsync.sandbox import FaultConfig, Sandbox, SandboxState, generate
from certsync.settings import Settings, load_settings
from certsync.store import Store
from certsync.sync import SyncOptions, check_config, open_clients, run_sync

log = structlog.get_logger("certsync.cli")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse exits 2 on usage errors, as SPEC.md says
        self.print_usage(sys.stderr)
        raise ConfigError(f"usage: {message}")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="certsync", description="Keep Monotree certificates in step with Natecosmic."
    )
    parser.add_argument("--version", action="version", version=f"certsync {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    fmt = {"choices": ["table", "json"], "default": "table", "help": "output format"}
    sync = sub.add_parser("sync", help="run one sync")
    sync.add_argument("--dry-run", action="store_true", help="make no write call; print the plan")
    sync.add_argument("--full", action="store_true", help="read every holder in Monotree")
    sync.add_argument("--format", **fmt)  # type: ignore[arg-type]
    sync.add_argument(
        "--allow-mass-revoke", action="store_true", help="override the mass-revoke guard"
    )
    plan = sub.add_parser("plan", help="the same as sync --dry-run")
    plan.add_argument("--full", action="store_true", help="read every holder in Monotree")
    plan.add_argument("--format", **fmt)  # type: ignore[arg-type]

    mappings = sub.add_parser("mappings", help="manage the mapping store")
    msub = mappings.add_subparsers(dest="mappings_command", required=True, parser_class=_Parser)
    imp = msub.add_parser("import", help="load a mapping file into the store")
    imp.add_argument("file", type=Path)
    imp.add_argument(
        "--prune", action="store_true", help="remove mappings the file no longer names"
    )
    lst = msub.add_parser("list", help="list the mappings in the store")
    lst.add_argument("--format", **fmt)  # type: ignore[arg-type]
    msub.add_parser("check", help="check every mapping against both APIs")

    status = sub.add_parser("status", help="recent runs and their outcomes")
    status.add_argument("--limit", type=int, default=10)
    status.add_argument("--format", **fmt)  # type: ignore[arg-type]

    sandbox = sub.add_parser("sandbox", help="serve local simulators of both APIs on 127.0.0.1")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--natecosmic-port", type=int, default=8001)
    sandbox.add_argument("--monotree-port", type=int, default=8002)
    sandbox.add_argument("--users", type=int, default=20)
    sandbox.add_argument("--types", type=int, default=3)
    sandbox.add_argument("--seed", type=int, default=1)
    sandbox.add_argument(
        "--mappings-out",
        type=Path,
        default=Path("sandbox-mappings.toml"),
        help="where to write the mapping file that fits the generated world",
    )
    sandbox.add_argument(
        "--rate-limit", type=int, default=60, help="Monotree requests a minute; 0 turns it off"
    )
    sandbox.add_argument("--latency", type=float, default=0.0, help="seconds added to each answer")
    sandbox.add_argument("--error-rate", type=float, default=0.0, help="share answered 429/500/503")
    sandbox.add_argument(
        "--drop-rate", type=float, default=0.0, help="share of dropped connections"
    )
    sandbox.add_argument("--slow-rate", type=float, default=0.0, help="share of slow answers")
    sandbox.add_argument("--slow-seconds", type=float, default=5.0)
    sub.add_parser("demo", help="a demo sync against the built-in sandbox, in a temp folder")
    sub.add_parser("run", help="the long-running daemon: syncs on a schedule, health on HTTP")
    health = sub.add_parser("healthcheck", help="exit 0 if the local daemon answers /healthz")
    health.add_argument("--timeout", type=float, default=3.0)
    return parser


def _progress(stream: TextIO) -> Callable[[str], None] | None:
    if not stream.isatty():
        return None

    def show(message: str) -> None:
        stream.write(f"\r\033[K{message}")
        stream.flush()

    return show


def cmd_sync(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    check_config(settings)
    store = Store(settings.database_url)
    progress = _progress(sys.stderr) if args.format == "table" else None
    try:
        with open_clients(settings) as clients:
            report = run_sync(
                settings,
                store,
                clients,
                SyncOptions(
                    dry_run=args.command == "plan" or args.dry_run,
                    force_full=args.full,
                    allow_mass_revoke=getattr(args, "allow_mass_revoke", False),
                ),
                progress=progress,
            )
    finally:
        if progress is not None:
            sys.stderr.write("\r\033[K")
        store.close()
    if args.format == "json":
        json.dump(to_json(report), out, indent=2, default=str)
        out.write("\n")
    else:
        out.write(render_table(report) + "\n")
    return report.exit_code


def cmd_mappings(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    if args.mappings_command == "import":
        mapping_file = load_mapping_file(args.file)
        store = Store(settings.database_url)
        try:
            summary = store.import_mappings(mapping_file, prune=args.prune)
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
    if args.mappings_command == "list":
        store = Store(settings.database_url)
        try:
            types, users, policy = store.type_mappings(), store.user_mappings(), store.policy()
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
    return check_mappings(settings, out)


def cmd_status(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    store = Store(settings.database_url)
    try:
        runs = store.recent_runs(args.limit)
    finally:
        store.close()
    if args.format == "json":
        json.dump([asdict(r) for r in runs], out, indent=2, default=str)
        out.write("\n")
        return EXIT_OK
    if not runs:
        out.write("no runs yet\n")
        return EXIT_OK
    out.write(f"{'run':16}  {'kind':11}  {'started (UTC)':19}  {'outcome':11}  exit  summary\n")
    for r in runs:
        summary = ", ".join(
            f"{k} {v}"
            for k, v in r.counts.items()
            if v and k in ("assign", "renew", "revoke", "held_back", "failed_requests")
        )
        exit_code = "-" if r.exit_code is None else str(r.exit_code)
        out.write(
            f"{r.id:16}  {r.kind:11}  {r.started_at:%Y-%m-%d %H:%M:%S}  "
            f"{r.outcome or 'running':11}  {exit_code:>4}  {summary or '-'}"
            + (f"  error: {r.error}" if r.error else "")
            + "\n"
        )
    return EXIT_OK


def cmd_sandbox(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    for name in ("error_rate", "drop_rate", "slow_rate"):
        if not 0.0 <= getattr(args, name) <= 1.0:
            raise ConfigError(f"--{name.replace('_', '-')} must be between 0 and 1")
    state = SandboxState(
        rate_limit=args.rate_limit or None,
        faults=FaultConfig(
            latency=args.latency,
            error_rate=args.error_rate,
            drop_rate=args.drop_rate,
            slow_rate=args.slow_rate,
            slow_seconds=args.slow_seconds,
            seed=args.seed,
        ),
    )
    world = generate(state, users=args.users, types=args.types, seed=args.seed)
    args.mappings_out.write_text(world.mapping_toml, encoding="utf-8")
    sandbox = Sandbox(
        state,
        host=args.host,
        natecosmic_port=args.natecosmic_port,
        monotree_port=args.monotree_port,
    )
    try:
        sandbox.start()
    except RuntimeError as exc:
        raise ConfigError(str(exc)) from None
    out.write(
        f"Natecosmic sandbox: {sandbox.natecosmic_url}\n"
        f"Monotree sandbox:   {sandbox.monotree_url}\n"
        f"{len(state.records)} records, {args.users} users, {args.types} templates; "
        f"mapping file written to {args.mappings_out}\n"
        "Point certsync at it from another terminal with:\n"
    )
    for key, value in {
        **sandbox.env(),
        "CERTSYNC_MAPPINGS_FILE": str(args.mappings_out),
    }.items():
        out.write(f"  export {key}={value}\n")
    out.write("Press Ctrl-C to stop.\n")
    out.flush()
    try:
        while sandbox.alive():
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()
    return EXIT_OK


def cmd_demo(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    # The demo speaks through its tables; only problems are worth a log line.
    certsync_logging.configure(settings.log_format, "warning")
    return run_demo(out)


def cmd_run(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    return run_daemon(settings)


def cmd_healthcheck(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
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


_COMMANDS: dict[str, Callable[[argparse.Namespace, Settings, TextIO], int]] = {
    "sync": cmd_sync,
    "plan": cmd_sync,
    "mappings": cmd_mappings,
    "status": cmd_status,
    "sandbox": cmd_sandbox,
    "demo": cmd_demo,
    "run": cmd_run,
    "healthcheck": cmd_healthcheck,
}


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
        settings = load_settings()
        certsync_logging.configure(settings.log_format, settings.log_level)
        return _COMMANDS[args.command](args, settings, sys.stdout)
    except CertsyncError as exc:
        sys.stderr.write(f"certsync: error: {REDACTOR(str(exc))}\n")
        return exc.exit_code
    except SQLAlchemyError as exc:
        detail = getattr(exc, "orig", None) or exc
        sys.stderr.write(f"certsync: error: the store failed: {REDACTOR(str(detail))}\n")
        return EXIT_CONFIG
    except KeyboardInterrupt:
        sys.stderr.write("certsync: interrupted\n")
        return 130
    except SystemExit as exc:  # --help and --version
        return int(exc.code or 0) if isinstance(exc.code, int) else EXIT_CONFIG
    except Exception as exc:
        log.debug("cli.internal_error", exc_info=True)
        message = REDACTOR(f"{type(exc).__name__}: {exc}")
        sys.stderr.write(
            f"certsync: internal error: {message} (CERTSYNC_LOG_LEVEL=debug shows where)\n"
        )
        return EXIT_FAILED
