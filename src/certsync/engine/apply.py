"""Runs the write requests of a plan: journal first, then the call, then the outcome.

A request Monotree refuses as a whole (422, or 404 for a template deleted
since the plan) is split in halves and retried, so one bad user or template
costs a few extra requests instead of the whole chunk.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import structlog

from certsync.actions import ApplyResult, Failure
from certsync.errors import (
    ApiError,
    AuthError,
    NotFoundError,
    OutcomeUnknownError,
    RejectedError,
    ResponseFormatError,
    StopRequested,
)
from certsync.writes import Action, AssignItem, AssignRequest, WriteRequest

log = structlog.get_logger("certsync.apply")


class Writer(Protocol):
    """The two Monotree calls a plan needs."""

    def assign(self, items: Sequence[AssignItem]) -> None: ...

    def reset(
        self, certificate_id: int, *, user_ids: Sequence[int], expire: bool, notify: bool
    ) -> None: ...


class Journal(Protocol):
    def record_intent(self, run_id: str, seq: int, request: WriteRequest) -> str: ...

    def record_outcome(
        self, journal_id: str, request: WriteRequest, outcome: str, error: str | None = None
    ) -> None: ...


def _describe(request: WriteRequest) -> tuple[Action, tuple[int, ...], tuple[int, ...]]:
    return request.action, request.certificate_ids(), request.users()


def _send(writer: Writer, request: WriteRequest) -> None:
    if isinstance(request, AssignRequest):
        writer.assign(request.items)
    else:
        writer.reset(
            request.certificate_id,
            user_ids=request.user_ids,
            expire=True,
            notify=request.notify,
        )


class _Run:
    """The state one apply shares between its workers, behind one lock."""

    def __init__(
        self,
        *,
        writer: Writer,
        journal: Journal,
        run_id: str,
        should_stop: Callable[[], bool],
        on_progress: Callable[[int, int], None] | None,
        total: int,
    ) -> None:
        self.writer = writer
        self.journal = journal
        self.run_id = run_id
        self.should_stop = should_stop
        self.on_progress = on_progress
        self.lock = threading.Lock()
        self.seq = 0
        self.done = 0
        self.total = total
        self.ok = 0
        self.failures: list[Failure] = []
        self.stopped: str | None = None
        self.auth_error: AuthError | None = None

    def halted(self) -> bool:
        if self.auth_error is not None or self.stopped is not None:
            return True
        if self.should_stop():
            self.stopped = "stop requested"
            return True
        return False

    def next_seq(self) -> int:
        with self.lock:
            self.seq += 1
            return self.seq

    def fail(self, failure: Failure) -> None:
        with self.lock:
            self.failures.append(failure)

    def finished(self, ok: bool) -> None:
        with self.lock:
            self.ok += ok
            self.done += 1
            done, total = self.done, self.total
        if self.on_progress is not None:
            self.on_progress(done, total)

    def send(self, request: WriteRequest) -> None:
        """One request, and the halves of it Monotree refuses, until each is settled."""
        queue: deque[WriteRequest] = deque([request])
        while queue and not self.halted():
            self._one(queue.popleft(), queue)

    def _one(self, request: WriteRequest, queue: deque[WriteRequest]) -> None:
        action, certs, users = _describe(request)
        journal_id = self.journal.record_intent(self.run_id, self.next_seq(), request)
        try:
            _send(self.writer, request)
        except AuthError as exc:
            self.journal.record_outcome(journal_id, request, "failed", str(exc))
            self.fail(Failure(action, certs, users, str(exc)))
            with self.lock:
                self.auth_error = self.auth_error or exc
        except StopRequested as exc:
            # Raised before the request left: it was never sent.
            self.journal.record_outcome(journal_id, request, "failed", f"not sent: {exc}")
            self.stopped = str(exc)
        except (RejectedError, NotFoundError) as exc:
            halves = request.halves()
            if halves is None:
                self.journal.record_outcome(journal_id, request, "failed", str(exc))
                self.fail(Failure(action, certs, users, str(exc)))
                log.warning("apply.failed", action=action, certificates=certs, error=str(exc))
                self.finished(False)
                return
            self.journal.record_outcome(journal_id, request, "failed", f"split: {exc}")
            log.info("apply.split", action=action, size=len(users), error=str(exc))
            queue.extendleft(reversed(halves))
            with self.lock:
                self.total += 1  # one request became two
        except (OutcomeUnknownError, ResponseFormatError) as exc:
            self.journal.record_outcome(journal_id, request, "unknown", str(exc))
            self.fail(Failure(action, certs, users, str(exc), outcome="unknown"))
            log.warning("apply.unknown", action=action, certificates=certs, error=str(exc))
            self.finished(False)
        except ApiError as exc:
            self.journal.record_outcome(journal_id, request, "failed", str(exc))
            self.fail(Failure(action, certs, users, str(exc)))
            log.warning("apply.failed", action=action, certificates=certs, error=str(exc))
            self.finished(False)
        else:
            self.journal.record_outcome(journal_id, request, "ok")
            log.debug("apply.ok", action=action, certificates=certs, users=len(users))
            self.finished(True)


def _phases(requests: Sequence[WriteRequest]) -> list[list[WriteRequest]]:
    """Runs of requests of one kind: every reset must end before the assigns begin."""
    phases: list[list[WriteRequest]] = []
    for request in requests:
        if phases and type(phases[-1][0]) is type(request):
            phases[-1].append(request)
        else:
            phases.append([request])
    return phases


def apply_requests(
    requests: Sequence[WriteRequest],
    *,
    writer: Writer,
    journal: Journal,
    run_id: str,
    should_stop: Callable[[], bool] = lambda: False,
    on_progress: Callable[[int, int], None] | None = None,
    concurrency: int = 1,
) -> ApplyResult:
    """Send every request; a failed one is recorded and the rest go on.

    Requests of one kind are independent of each other, so up to `concurrency`
    are in flight at once; a phase of resets ends before the assigns that may
    renew what they reset begin. An AuthError stops the run (every later request
    would fail the same way) once its outcome is journaled, and propagates.
    """
    run = _Run(
        writer=writer,
        journal=journal,
        run_id=run_id,
        should_stop=should_stop,
        on_progress=on_progress,
        total=len(requests),
    )
    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="apply") as pool:
        for phase in _phases(requests):
            if run.halted():
                break
            for future in [pool.submit(run.send, request) for request in phase]:
                future.result()
    if run.auth_error is not None:
        raise run.auth_error
    if run.stopped is not None:
        log.info("apply.stopped", sent=run.done, planned=len(requests))
    return ApplyResult(run.ok, tuple(run.failures), stopped=run.stopped)
