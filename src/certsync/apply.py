"""Runs the write requests of a plan: journal first, then the call, then the outcome.

A request Monotree refuses as a whole (422, or 404 for a template deleted
since the plan) is split in halves and retried, so one bad user or template
costs a few extra requests instead of the whole chunk.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Literal, Protocol

import structlog

from certsync.errors import (
    ApiError,
    AuthError,
    NotFoundError,
    OutcomeUnknownError,
    RejectedError,
    ResponseFormatError,
    StopRequested,
)
from certsync.models import (
    ApplyResult,
    AssignItem,
    AssignRequest,
    Failure,
    ResetRequest,
    WriteRequest,
)

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


def _split(request: WriteRequest) -> tuple[WriteRequest, WriteRequest] | None:
    if isinstance(request, AssignRequest):
        if len(request.items) < 2:
            return None
        mid = len(request.items) // 2
        return AssignRequest(request.items[:mid]), AssignRequest(request.items[mid:])
    if len(request.user_ids) < 2:
        return None
    mid = len(request.user_ids) // 2
    halves = request.user_ids[:mid], request.user_ids[mid:]
    return tuple(  # type: ignore[return-value]
        ResetRequest(
            request.certificate_id,
            users,
            request.notify,
            tuple(u for u in users if u in request.revoke_user_ids),
        )
        for users in halves
    )


def _describe(
    request: WriteRequest,
) -> tuple[Literal["assign", "reset"], tuple[int, ...], tuple[int, ...]]:
    if isinstance(request, AssignRequest):
        return (
            "assign",
            request.certificate_ids(),
            tuple(sorted({i.user_id for i in request.items})),
        )
    return "reset", (request.certificate_id,), request.user_ids


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


def apply_requests(
    requests: Sequence[WriteRequest],
    *,
    writer: Writer,
    journal: Journal,
    run_id: str,
    should_stop: Callable[[], bool] = lambda: False,
    on_progress: Callable[[int, int], None] | None = None,
) -> ApplyResult:
    """Send every request in order; a failed one is recorded and the rest go on.

    An AuthError stops the run (every later request would fail the same way)
    after its outcome is journaled, and propagates to the caller.
    """
    queue: deque[WriteRequest] = deque(requests)
    failures: list[Failure] = []
    ok = 0
    seq = 0
    total = len(queue)
    while queue:
        if should_stop():
            log.info("apply.stopped", remaining=len(queue))
            return ApplyResult(ok, tuple(failures), stopped="stop requested")
        request = queue.popleft()
        seq += 1
        action, certs, users = _describe(request)
        journal_id = journal.record_intent(run_id, seq, request)
        try:
            _send(writer, request)
        except AuthError as exc:
            journal.record_outcome(journal_id, request, "failed", str(exc))
            failures.append(Failure(action, certs, users, str(exc)))
            raise
        except StopRequested as exc:
            # Raised before the request left: it was never sent.
            journal.record_outcome(journal_id, request, "failed", f"not sent: {exc}")
            log.info("apply.stopped", remaining=len(queue) + 1)
            return ApplyResult(ok, tuple(failures), stopped=str(exc))
        except (RejectedError, NotFoundError) as exc:
            halves = _split(request)
            if halves is not None:
                journal.record_outcome(journal_id, request, "failed", f"split: {exc}")
                log.info("apply.split", action=action, size=len(users), error=str(exc))
                queue.extendleft(reversed(halves))
                total += 2
                continue
            journal.record_outcome(journal_id, request, "failed", str(exc))
            failures.append(Failure(action, certs, users, str(exc)))
            log.warning("apply.failed", action=action, certificates=certs, error=str(exc))
        except (OutcomeUnknownError, ResponseFormatError) as exc:
            journal.record_outcome(journal_id, request, "unknown", str(exc))
            failures.append(Failure(action, certs, users, str(exc), outcome="unknown"))
            log.warning("apply.unknown", action=action, certificates=certs, error=str(exc))
        except ApiError as exc:
            journal.record_outcome(journal_id, request, "failed", str(exc))
            failures.append(Failure(action, certs, users, str(exc)))
            log.warning("apply.failed", action=action, certificates=certs, error=str(exc))
        else:
            journal.record_outcome(journal_id, request, "ok")
            ok += 1
            log.debug("apply.ok", action=action, certificates=certs, users=len(users))
        if on_progress is not None:
            on_progress(seq, total)
    return ApplyResult(ok, tuple(failures))
