"""The long-running daemon: a schedule, health and metrics over HTTP, a graceful stop.

Public surface: `Daemon`, `run_daemon`, `Metrics`, `ServerThread`.
"""

from certsync.service.daemon import Daemon, run_daemon
from certsync.service.metrics import Metrics
from certsync.service.serve import ServerThread

__all__ = ["Daemon", "Metrics", "ServerThread", "run_daemon"]
