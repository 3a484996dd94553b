"""Webhook deliveries on their way into the store, committed in groups.

Each delivery must be in the store before the receiver answers 2xx (an answer
Monotree will not retry); one transaction per delivery queues them behind each
other on the database lock under load. The inbox writes whatever has arrived
since its last commit in one transaction, and answers each waiting request.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future

import structlog

log = structlog.get_logger("certsync.service.inbox")

Received = tuple[str, str, int | None, str | None]
MAX_GROUP = 500


class Inbox:
    def __init__(
        self,
        record_many: Callable[[Sequence[Received]], list[bool]],
        on_new: Callable[[str], None],
    ) -> None:
        self._record_many = record_many
        self._on_new = on_new
        self._queue: queue.SimpleQueue[tuple[Received, Future[bool]] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="certsync-inbox", daemon=True)
        self._thread.start()

    def submit(self, item: Received) -> Future[bool]:
        """A future that says, once the delivery is committed, whether it is new."""
        done: Future[bool] = Future()
        self._queue.put((item, done))
        return done

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            while len(group) < MAX_GROUP:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)  # finish this group, then stop
                    break
                group.append(more)
            try:
                fresh = self._record_many([item for item, _ in group])
            except Exception as exc:  # the store is down: each request answers 5xx
                log.error("webhook.not_recorded", deliveries=len(group), error=str(exc))
                for _, done in group:
                    done.set_exception(exc)
                continue
            for (item, done), new in zip(group, fresh, strict=True):
                if new:
                    self._on_new(item[0])
                done.set_result(new)
