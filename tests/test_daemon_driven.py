"""The daemon driven step by step: a fake clock and a scripted cycle, no sleeping."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pytest

from certsync.engine.report import Kind, SyncOptions, SyncReport
from certsync.engine.scope import Scope
from certsync.errors import AuthError, LockBusyError
from certsync.service.daemon import Daemon
from certsync.settings import load_settings


@dataclass
class FakeClock:
    """Time moves only when a test moves it; a wait moves it by what it waited."""

    t: float = 1_800_000_000.0
    waits: list[float] = field(default_factory=list)

    def now(self) -> float:
        return self.t

    def wait(self, event: threading.Event, seconds: float) -> bool:
        self.waits.append(seconds)
        self.t += seconds
        return event.is_set()


@dataclass
class FakeStore:
    up: bool = True

    def ping(self) -> None:
        if not self.up:
            raise ConnectionError("down")

    def owned_count(self) -> int:
        return 7

    def held_back_by_reason(self) -> Mapping[str, int]:
        return {}


@dataclass
class ScriptedCycle:
    """Answers each cycle with the next scripted outcome: "ok", "error", "partial", or an exception."""

    script: list[str | Exception]
    seen: list[SyncOptions] = field(default_factory=list)

    def __call__(self, options: SyncOptions) -> SyncReport:
        self.seen.append(options)
        step = self.script.pop(0) if self.script else "ok"
        if isinstance(step, Exception):
            raise step
        kind: Kind = "full" if options.force_full else "incremental"
        report = SyncReport(run_id=f"r{len(self.seen)}", kind=kind, dry_run=False)
        if step == "error":
            report.failure = AuthError("monotree", "401 Unauthorized", status=401)
            report.error = str(report.failure)
        elif step == "partial":
            report.missing_templates = [99]
        return report


def make(script: list[str | Exception], **env: str) -> tuple[Daemon, FakeClock, ScriptedCycle]:
    settings = load_settings(schedule={"interval": 900, "max_backoff": 30, **env})
    clock, cycle = FakeClock(), ScriptedCycle(script)
    return Daemon(settings, cycle=cycle, store=FakeStore(), clock=clock), clock, cycle


def run_until(daemon: Daemon, clock: FakeClock, seconds: float) -> list[SyncReport]:
    """Step the daemon as its loop would, until `seconds` of fake time have passed."""
    end, reports = clock.t + seconds, []
    while clock.t < end:
        if (report := daemon.run_pending()) is not None:
            reports.append(report)
        clock.wait(daemon.schedule.wake, min(daemon.schedule.seconds_to_next(), end - clock.t))
        daemon.schedule.wake.clear()
    return reports


def test_the_first_cycle_runs_at_start_full_then_every_interval() -> None:
    daemon, clock, _cycle = make([])
    reports = run_until(daemon, clock, 3 * 900 + 1)
    assert [r.kind for r in reports] == ["full", "incremental", "incremental", "incremental"]
    assert daemon.readiness() == (True, "ok")


def test_a_failed_full_cycle_is_retried_as_full_and_the_daemon_is_not_ready() -> None:
    daemon, clock, _cycle = make(["error"] * 3)
    reports = run_until(daemon, clock, 1 + 2 + 4 + 0.5)
    assert [r.kind for r in reports] == ["full", "full", "full", "full"]
    assert [r.outcome for r in reports] == ["error", "error", "error", "converged"]
    assert daemon.readiness() == (True, "ok")


def test_while_cycles_fail_the_daemon_says_why_it_is_not_ready() -> None:
    daemon, _clock, _cycle = make(["error"])
    daemon.run_pending()
    ready, reason = daemon.readiness()
    assert not ready
    assert reason == "the last 1 cycle(s) failed; the last error: monotree: 401 Unauthorized"


def test_retries_wait_1_2_4_8_16_then_30_seconds() -> None:
    daemon, clock, cycle = make(["error"] * 8)
    runs: list[float] = []
    for _ in range(8):
        clock.t = max(clock.t, daemon.schedule.next_at)
        daemon.run_pending()
        runs.append(clock.t)
    assert [b - a for a, b in itertools.pairwise(runs)] == [1, 2, 4, 8, 16, 30, 30]
    assert len(cycle.seen) == 8 and daemon.health.consecutive_failures == 8


def test_success_after_failures_returns_to_the_schedule() -> None:
    daemon, clock, _cycle = make(["error", "error"])
    run_until(daemon, clock, 10)
    assert daemon.health.consecutive_failures == 0
    assert daemon.health.last_run_at is not None
    assert daemon.schedule.next_at == daemon.health.last_run_at + 900


def test_a_partial_cycle_is_a_failure_too() -> None:
    daemon, clock, _cycle = make(["partial"])
    run_until(daemon, clock, 0.5)
    ready, reason = daemon.readiness()
    assert not ready and "missing in Monotree: 99" in reason


def test_another_writer_holding_the_lock_is_not_a_failure() -> None:
    daemon, clock, _cycle = make([LockBusyError("locked by pid 7")])
    assert daemon.run_pending() is None
    assert daemon.health.consecutive_failures == 0 and daemon.health.last_outcome == "lock-busy"
    assert daemon.schedule.next_at == pytest.approx(clock.t + 900)


def test_request_run_runs_at_once_within_its_scope() -> None:
    daemon, clock, cycle = make([])
    run_until(daemon, clock, 1)  # the first, full cycle
    daemon.request_run("webhook", Scope.of_users([501]))
    report = daemon.run_pending()
    assert report is not None
    assert cycle.seen[-1].scope == Scope.of_users([501]) and not cycle.seen[-1].force_full
    assert daemon.run_pending() is None  # nothing else is due


def test_a_stream_of_requests_never_starves_the_scheduled_cycle() -> None:
    """Webhooks keep coming: a due cycle still runs, then the requests in their order."""
    daemon, clock, cycle = make([])
    run_until(daemon, clock, 1)
    for user in (501, 502, 503):
        daemon.request_run("webhook", Scope.of_users([user]))
    daemon.run_pending()  # one request
    clock.t = daemon.schedule.next_at  # the interval is up
    daemon.run_pending()
    assert cycle.seen[-1].scope.is_everything  # the scheduled cycle went first
    daemon.run_pending()
    daemon.run_pending()
    assert [o.scope.users for o in cycle.seen[1:]] == [
        frozenset({501}),
        None,
        frozenset({502}),
        frozenset({503}),
    ]


def test_webhook_deliveries_that_waited_are_handled_together_in_their_turn() -> None:
    """Deliveries that arrived while a cycle ran are one group for the handler (one
    scoped sync for all); a run asked for among them keeps its place after them."""
    settings = load_settings(schedule={"interval": 900})
    clock, cycle = FakeClock(), ScriptedCycle([])
    groups: list[list[str]] = []

    def handle(ids: Sequence[str]) -> SyncReport | None:
        groups.append(list(ids))
        return None

    daemon = Daemon(settings, cycle=cycle, store=FakeStore(), clock=clock, handle_webhook=handle)
    run_until(daemon, clock, 1)
    daemon.webhook_received("d-1")
    daemon.request_run("operator", Scope.of_users([501]))
    daemon.webhook_received("d-2")
    daemon.webhook_received("d-1")  # found again in the store: queued once
    daemon.webhook_received("d-3")
    daemon.run_pending()
    assert groups == [["d-1", "d-2", "d-3"]]
    daemon.run_pending()
    assert cycle.seen[-1].scope == Scope.of_users([501])
    assert daemon.run_pending() is None
    daemon.webhook_received("d-2")  # handled since: a new turn of its own
    daemon.run_pending()
    assert groups[-1] == ["d-2"]


def test_a_scoped_request_before_the_first_success_does_not_count_as_full() -> None:
    daemon, clock, cycle = make(["error"])
    daemon.run_pending()
    daemon.request_run("operator", Scope.of_users([501]))
    daemon.run_pending()
    assert cycle.seen[-1].force_full is False
    clock.t = daemon.schedule.next_at
    daemon.run_pending()
    assert cycle.seen[-1].force_full is True and cycle.seen[-1].scope.is_everything


def test_not_ready_when_the_store_does_not_answer() -> None:
    daemon, _clock, _cycle = make([])
    daemon.run_pending()
    store = FakeStore(up=False)
    daemon._store = store
    ready, reason = daemon.readiness()
    assert not ready and reason == "store unreachable: ConnectionError"


def test_stale_success_is_not_ready() -> None:
    daemon, clock, _cycle = make([])
    daemon.run_pending()
    clock.t += 2 * 900 + 1
    ready, reason = daemon.readiness()
    assert not ready and "more than twice the interval" in reason


def test_a_cron_schedule_runs_at_its_fire_times() -> None:
    daemon, clock, _cycle = make([], cron="*/5 * * * *", interval="900")
    clock.t = 1_800_000_000.0  # 2027-01-15 08:00:00 UTC, on a five-minute mark
    daemon.schedule.next_at = clock.t
    daemon.run_pending()
    assert daemon.schedule.next_at == clock.t + 300
    assert daemon.interval == 300


def test_stop_ends_the_loop_without_another_cycle() -> None:
    daemon, _clock, cycle = make([])
    daemon.run_pending()
    daemon.request_stop()
    daemon.loop()  # returns at once
    assert len(cycle.seen) == 1


def test_a_store_that_fails_after_a_cycle_does_not_end_the_cycles() -> None:
    daemon, clock, cycle = make([])

    def gone() -> int:
        raise ConnectionError("the database went away")

    daemon._store.owned_count = gone  # type: ignore[method-assign]  # a store failing now
    assert daemon.run_pending() is not None  # the cycle's report still counts
    clock.t = daemon.schedule.next_at
    assert daemon.run_pending() is not None and len(cycle.seen) == 2
