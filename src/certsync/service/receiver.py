"""The webhook receiver in a process of its own.

A cycle parses and plans ten thousand records while holding the interpreter
lock; a receiver in the same process waits for it, and its answers slowed to
hundreds of milliseconds (docs/performance.md). So `certsync run` starts this
process, which verifies, records and answers with an interpreter of its own,
and tells its parent on stdout, one line each:

    ready <port>          listening
    delivery <id>         a new delivery is in the store: the leader syncs its user
    outcome <name>        one answer, by outcome (the parent counts it in /metrics)
    error <message>       it could not start

It stops when its stdin closes (the parent stopped, or died); it ignores SIGTERM
and SIGINT, which a group-wide stop would send it before the parent is done.
A request may be answered before "ready" is written; the parent takes the
lines in order either way.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import TextIO

import structlog

from certsync import logging as certsync_logging
from certsync.errors import CertsyncError, ConfigError
from certsync.redaction import Redactor
from certsync.service.inbox import Inbox
from certsync.service.serve import ServerThread
from certsync.service.webhooks import Secrets, webhook_app
from certsync.settings import load_settings
from certsync.store import open_store

log = structlog.get_logger("certsync.service.receiver")


class _Parent:
    """Lines to the parent, one at a time; a parent gone ends this process."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._lock = threading.Lock()

    def tell(self, kind: str, value: object) -> None:
        try:
            with self._lock:
                self._out.write(f"{kind} {value}\n")
                self._out.flush()
        except (BrokenPipeError, ValueError):
            os._exit(0)  # the parent is gone: nobody would handle what this receives


def main() -> int:
    parent = _Parent(sys.stdout)
    redactor = Redactor()
    try:
        settings = load_settings()
        certsync_logging.configure(settings.log_format, settings.log_level, redactor=redactor)
        store = open_store(settings)
    except CertsyncError as exc:
        parent.tell("error", str(exc).replace("\n", " "))
        return 2
    stop = threading.Event()
    # The parent decides when this stops (it closes the pipe after its last cycle): a
    # Ctrl-C, or a SIGTERM sent to the whole group (systemd does), reaches it too.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    listener = settings.webhook
    inbox = Inbox(store.deliveries.record_many, lambda delivery: parent.tell("delivery", delivery))
    app = webhook_app(
        Secrets(listener, redactor), inbox, count=lambda outcome: parent.tell("outcome", outcome)
    )
    server = ServerThread([(app, listener.port)], host=listener.host)
    try:
        server.start()
    except RuntimeError as exc:
        parent.tell("error", f"webhook listener on {listener.host}:{listener.port}: {exc}")
        return 2
    # What start-up built (SQLAlchemy, Starlette, pydantic, the settings) lives as long as
    # the process. Frozen, a full collection no longer walks it: each one held every
    # answer for 90 to 120 ms under load (docs/performance.md, webhook receiver).
    gc.collect()
    gc.freeze()
    parent.tell("ready", server.port())

    def watch_parent() -> None:
        sys.stdin.read()  # returns at EOF: the parent closed the pipe, or died
        stop.set()

    threading.Thread(target=watch_parent, name="certsync-receiver-parent", daemon=True).start()
    stop.wait()
    server.stop()  # no request left waiting, then the inbox commits what it holds
    inbox.close()
    store.close()
    return 0


class ReceiverProcess:
    """The parent's side: start the receiver, read what it says, stop it."""

    def __init__(
        self,
        *,
        on_delivery: Callable[[str], None],
        on_outcome: Callable[[str], None],
        on_death: Callable[[], None],
    ) -> None:
        self._on_delivery = on_delivery
        self._on_outcome = on_outcome
        self._on_death = on_death
        self._stopping = False
        self.died = False
        self._port = 0
        self._proc = subprocess.Popen(
            # Not `-m`: this package is imported already when its module would run as
            # __main__, and runpy warns that it runs twice.
            [
                sys.executable,
                "-c",
                "import sys; from certsync.service.receiver import main; sys.exit(main())",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        assert self._proc.stdout is not None
        while True:  # a request may be answered before "ready" is written: dispatched
            kind, value = self._next()
            if kind == "ready":
                self._port = int(value)
                break
            if kind in ("error", ""):
                self._proc.wait(timeout=10)
                raise ConfigError(value or "the webhook receiver did not start")
            self._dispatch(kind, value)
        self._reader = threading.Thread(target=self._read, name="certsync-receiver", daemon=True)
        self._reader.start()

    def port(self) -> int:
        return self._port

    def _next(self) -> tuple[str, str]:
        """The receiver's next line as (kind, value); ("", "") once it has exited."""
        assert self._proc.stdout is not None
        raw = self._proc.stdout.readline()
        if not raw:
            return "", ""
        kind, _, value = raw.strip().partition(" ")
        return kind or "blank", value

    def _dispatch(self, kind: str, value: str) -> None:
        if kind == "delivery":
            self._on_delivery(value)
        elif kind == "outcome":
            self._on_outcome(value)

    def _read(self) -> None:
        while (line := self._next()) != ("", ""):
            self._dispatch(*line)
        if not self._stopping:
            # Deliveries would be refused from now on: the daemon stops, non-zero, and its
            # supervisor starts both again (Monotree retries what was refused meanwhile).
            self.died = True
            log.error("webhook.receiver_died", returncode=self._proc.wait())
            self._on_death()

    def stop(self) -> None:
        self._stopping = True
        assert self._proc.stdin is not None
        with contextlib.suppress(OSError):
            self._proc.stdin.close()  # the receiver's cue to finish and exit
        try:
            self._proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._reader.join(timeout=5)


if __name__ == "__main__":
    sys.exit(main())
