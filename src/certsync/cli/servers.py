"""The commands that start servers: `sandbox`, `demo` and `run` (the daemon).

`cli.main` imports this module only when one of them runs.
"""

from __future__ import annotations

import argparse
import signal
import threading
from typing import TextIO

from certsync import logging as certsync_logging
from certsync.cli.demo import run_demo
from certsync.cli.exit_codes import EXIT_FAILED, EXIT_OK
from certsync.errors import ConfigError
from certsync.redaction import Redactor
from certsync.sandbox import FaultConfig, Sandbox, SandboxState, generate
from certsync.service.wiring import run_daemon
from certsync.settings import Settings


def cmd_sandbox(
    args: argparse.Namespace, settings: Settings, out: TextIO, redactor: Redactor
) -> int:
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
    state.etags = not args.no_etags
    state.last_modified = not args.no_last_modified
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
    # Handlers of our own, before saying how to stop: a process started in the background
    # by a shell without job control inherits SIGINT as ignored, and Ctrl-C (or a test's
    # SIGINT right after the prompt) must still stop it.
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda _signum, _frame: stopping.set())
    out.write("Press Ctrl-C to stop.\n")
    out.flush()
    try:
        while sandbox.alive() and not stopping.wait(0.5):
            pass
    finally:
        sandbox.stop()
    return EXIT_OK


def cmd_demo(args: argparse.Namespace, settings: Settings, out: TextIO, redactor: Redactor) -> int:
    # The demo speaks through its tables; only problems are worth a log line.
    certsync_logging.configure(settings.log_format, "warning", redactor=redactor)
    return run_demo(out, redactor)


def cmd_run(args: argparse.Namespace, settings: Settings, out: TextIO, redactor: Redactor) -> int:
    return EXIT_OK if run_daemon(settings, redactor) else EXIT_FAILED
