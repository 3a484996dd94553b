"""Apply: journal before the call, outcome after; failures isolated; a refused body is split."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import pytest

from certsync.engine.apply import apply_requests
from certsync.errors import AuthError, OutcomeUnknownError, RejectedError, RetriableError
from certsync.store import Store
from certsync.writes import AssignItem, AssignRequest, ResetRequest, WriteRequest


class FakeWriter:
    """Records calls; refuses any body that names a user in `bad_users`."""

    def __init__(
        self, store: Store, bad_users: Sequence[int] = (), fail_with: Exception | None = None
    ) -> None:
        self.store = store
        self.bad = set(bad_users)
        self.fail_with = fail_with
        self.calls: list[tuple[str, tuple[int, ...]]] = []
        self.open_intents_seen: list[int] = []

    def _check(self, users: Sequence[int]) -> None:
        # The journal intent must already be committed when the call happens.
        self.open_intents_seen.append(
            sum(1 for j in self.store.journal.entries() if j.outcome is None)
        )
        if self.fail_with is not None:
            raise self.fail_with
        if self.bad & set(users):
            raise RejectedError("monotree", "422: The selected user id is invalid.", status=422)

    def assign(self, items: Sequence[AssignItem]) -> None:
        users = tuple(i.user_id for i in items)
        self.calls.append(("assign", users))
        self._check(users)

    def reset(
        self, certificate_id: int, *, user_ids: Sequence[int], expire: bool, notify: bool
    ) -> None:
        self.calls.append(("reset", tuple(user_ids)))
        self._check(user_ids)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(f"sqlite:///{tmp_path / 'a.db'}")


def assign_of(*users: int) -> AssignRequest:
    return AssignRequest(tuple(AssignItem(12, u, date(2026, 6, 1)) for u in users))


def test_every_request_is_journaled_before_it_is_sent(store: Store) -> None:
    """Each call happens with exactly its own intent open; afterwards every outcome is ok."""
    run = store.journal.start_run("full")
    writer = FakeWriter(store)
    requests: list[WriteRequest] = [ResetRequest(12, (1, 2), False, (2,)), assign_of(1, 3)]
    result = apply_requests(requests, writer=writer, journal=store.journal, run_id=run)
    assert result.requests_ok == 2 and result.failures == ()
    assert writer.calls == [("reset", (1, 2)), ("assign", (1, 3))]
    assert writer.open_intents_seen == [1, 1]
    assert [(j.action, j.outcome) for j in store.journal.entries(run)] == [
        ("reset", "ok"),
        ("assign", "ok"),
    ]
    assert set(store.holdings.owned_pairs()) == {(12, 1), (12, 3)}


def test_a_refused_chunk_is_split_until_the_bad_user_is_isolated(store: Store) -> None:
    """One unknown user in a body of eight costs a few extra requests, not the other seven."""
    run = store.journal.start_run("full")
    writer = FakeWriter(store, bad_users=[6])
    result = apply_requests(
        [assign_of(*range(1, 9))], writer=writer, journal=store.journal, run_id=run
    )
    assert [f.user_ids for f in result.failures] == [(6,)]
    assert set(store.holdings.owned_pairs()) == {(12, u) for u in range(1, 9) if u != 6}
    assert len(writer.calls) == 7  # 8 -> 4 ok + 4 -> 2 + 2 ok -> 1 ok + 1 bad
    outcomes = [j.outcome for j in store.journal.entries(run)]
    assert outcomes.count("ok") == 3 and outcomes.count("failed") == 4


def test_a_failed_request_does_not_stop_the_rest(store: Store) -> None:
    """A request that exhausts its retries is recorded as failed and the next one still goes."""
    run = store.journal.start_run("full")

    class Flaky(FakeWriter):
        def reset(
            self, certificate_id: int, *, user_ids: Sequence[int], expire: bool, notify: bool
        ) -> None:
            self.calls.append(("reset", tuple(user_ids)))
            raise RetriableError("monotree", "gave up after 5 attempts: 503")

    writer = Flaky(store)
    result = apply_requests(
        [ResetRequest(12, (1,), False, (1,)), assign_of(2)],
        writer=writer,
        journal=store.journal,
        run_id=run,
    )
    assert [f.action for f in result.failures] == ["reset"] and result.requests_ok == 1
    assert "503" in result.failures[0].error


def test_an_unknown_outcome_is_recorded_as_such(store: Store) -> None:
    """A write whose answer never came is 'unknown': ownership kept, template to re-read."""
    run = store.journal.start_run("full")
    writer = FakeWriter(store, fail_with=OutcomeUnknownError("monotree", "read timeout"))
    result = apply_requests([assign_of(1)], writer=writer, journal=store.journal, run_id=run)
    assert result.failures[0].outcome == "unknown"
    assert set(store.holdings.owned_pairs()) == {(12, 1)}
    assert store.holdings.template_states()[12].dirty


def test_auth_error_stops_the_run_with_its_outcome_journaled(store: Store) -> None:
    """A 401 mid-run records that request's outcome, sends nothing more, and propagates."""
    run = store.journal.start_run("full")
    writer = FakeWriter(store, fail_with=AuthError("monotree", "401"))
    with pytest.raises(AuthError):
        apply_requests(
            [assign_of(1), assign_of(2)], writer=writer, journal=store.journal, run_id=run
        )
    assert len(writer.calls) == 1
    assert [j.outcome for j in store.journal.entries(run)] == ["failed"]
    assert set(store.holdings.owned_pairs()) == set()


def test_a_stop_request_ends_between_requests(store: Store) -> None:
    """Stop asked while a request is in flight: it finishes and is journaled; no new one starts."""
    run = store.journal.start_run("full")
    stop = threading.Event()

    class StopsMidway(FakeWriter):
        def assign(self, items: Sequence[AssignItem]) -> None:
            super().assign(items)
            stop.set()  # SIGTERM arrives while this request is in flight

    writer = StopsMidway(store)
    result = apply_requests(
        [assign_of(1), assign_of(2)],
        writer=writer,
        journal=store.journal,
        run_id=run,
        should_stop=stop.is_set,
    )
    assert result.stopped and len(writer.calls) == 1
    assert [j.outcome for j in store.journal.entries(run)] == ["ok"]


def test_requests_of_one_kind_go_out_concurrently_and_resets_come_first(store: Store) -> None:
    """With concurrency 4, assign bodies overlap in flight, and none starts before every reset ended."""
    run = store.journal.start_run("full")
    in_flight = 0
    peak = 0
    order: list[str] = []
    lock = threading.Lock()

    class Slow(FakeWriter):
        def _check(self, users: Sequence[int]) -> None:
            nonlocal in_flight, peak
            with lock:
                in_flight += 1
                peak = max(peak, in_flight)
            time.sleep(0.05)
            with lock:
                in_flight -= 1

        def assign(self, items: Sequence[AssignItem]) -> None:
            order.append("assign")
            super().assign(items)

        def reset(
            self, certificate_id: int, *, user_ids: Sequence[int], expire: bool, notify: bool
        ) -> None:
            order.append("reset")
            super().reset(certificate_id, user_ids=user_ids, expire=expire, notify=notify)

    requests: list[WriteRequest] = [ResetRequest(c, (1,), False) for c in (12, 13, 14)] + [
        assign_of(u) for u in range(10, 18)
    ]
    result = apply_requests(
        requests, writer=Slow(store), journal=store.journal, run_id=run, concurrency=4
    )
    assert result.requests_ok == 11 and peak == 4
    assert order[:3] == ["reset"] * 3 and set(order[3:]) == {"assign"}
    assert sorted(j.seq for j in store.journal.entries(run)) == list(range(1, 12))
