"""The process exit codes `docs/cli.md` documents, and the one place they are chosen.

The engine reports an outcome and errors say whether the operator must fix
something; only the command line turns either into a number.
"""

from __future__ import annotations

from certsync.engine.report import Outcome, SyncReport
from certsync.errors import CertsyncError

__all__ = [
    "EXIT_BROKEN_PIPE",
    "EXIT_CONFIG",
    "EXIT_FAILED",
    "EXIT_GUARD",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "for_error",
    "for_report",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_GUARD = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a command its reader left


def for_error(error: CertsyncError) -> int:
    return EXIT_CONFIG if error.operator_must_fix else EXIT_FAILED


def for_report(report: SyncReport) -> int:
    match report.outcome:
        case Outcome.CONVERGED | Outcome.DRY_RUN:
            return EXIT_OK
        case Outcome.HELD_BACK:
            return EXIT_GUARD
        case Outcome.PARTIAL:
            return EXIT_FAILED
        case Outcome.ERROR:
            return for_error(report.failure) if report.failure is not None else EXIT_FAILED
