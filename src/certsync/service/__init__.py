"""The long-running daemon: cycles on a schedule or on request, health and metrics
over HTTP, a graceful stop.

Public surface: `Daemon` (driven by a cycle function and a clock), `run_daemon`
(the real wiring, `wiring.py`), `Schedule`, `RunRequest`, `Clock`, `Metrics`, `ServerThread`.
"""

from certsync.service.daemon import Daemon
from certsync.service.metrics import Metrics
from certsync.service.schedule import Clock, RunRequest, Schedule, backoff_seconds
from certsync.service.serve import ServerThread
from certsync.service.wiring import run_daemon

__all__ = [
    "Clock",
    "Daemon",
    "Metrics",
    "RunRequest",
    "Schedule",
    "ServerThread",
    "backoff_seconds",
    "run_daemon",
]
