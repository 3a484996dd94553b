"""The writer lease: random owners, the database's clock, and a loss that is noticed."""

from __future__ import annotations

import os
import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import respx
from alembic import command
from sqlalchemy import text

from certsync.cli.exit_codes import EXIT_FAILED, for_report
from certsync.clients.session import open_clients
from certsync.engine.cycle import run_sync
from certsync.engine.report import SyncOptions
from certsync.errors import LeaseLostError, StopRequested
from certsync.store import Store, schema
from tests.conftest import MONOTREE, NATECOSMIC, mocked_api_settings
from tests.test_natecosmic import record


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = Store(store_url, lock_lease_seconds=120)
    yield s
    s.close()


def leave_lease(store: Store, *, owner: str, pid: int, host: str, age_seconds: int) -> None:
    """A lease row as another process left it, its heartbeat `age_seconds` old by the
    database's own clock."""
    then = (
        "datetime('now', :age)"
        if store.engine.dialect.name == "sqlite"
        else "now() + CAST(:age AS interval)"
    )
    insert = (
        "INSERT INTO writer_lock (id, owner, pid, host, acquired_at, heartbeat_at) "  # noqa: S608 - `then` is one of two constants
        f"VALUES (1, :owner, :pid, :host, {then}, {then})"
    )
    with store.engine.begin() as conn:
        conn.execute(text("DELETE FROM writer_lock"))
        conn.execute(
            text(insert),
            {"owner": owner, "pid": pid, "host": host, "age": f"-{age_seconds} seconds"},
        )


def test_owners_are_random_per_process(store: Store, store_url: str) -> None:
    other = Store(store_url)
    assert store.lock.owner != other.lock.owner and len(store.lock.owner) == 32


def test_a_restarted_container_takes_its_predecessors_lease_once_it_missed_a_beat(
    store: Store,
) -> None:
    """Same hostname, PID 1 again, another owner, silent for 61 s (a beat is a third of
    the lease, 40 s): taken, long before the 120 s lease would run out."""
    here = socket.gethostname()
    leave_lease(store, owner="before-restart", pid=os.getpid(), host=here, age_seconds=61)
    assert store.lock.try_acquire() is None


def test_a_twin_container_with_the_same_hostname_keeps_its_lease(store: Store) -> None:
    """Also PID 1 on the same hostname, but beating: not a predecessor, not taken."""
    here = socket.gethostname()
    leave_lease(store, owner="twin", pid=os.getpid(), host=here, age_seconds=10)
    assert store.lock.try_acquire() is not None


def test_a_fresh_lease_of_another_host_is_respected(store: Store) -> None:
    leave_lease(store, owner="elsewhere", pid=4242, host="replica-b", age_seconds=10)
    holder = store.lock.try_acquire()
    assert holder is not None and "pid 4242 on replica-b" in holder


def test_a_stop_ends_the_wait_for_a_busy_lease_at_once(store: Store) -> None:
    """SIGTERM while another host holds the lease: no waiting out the lock timeout."""
    leave_lease(store, owner="elsewhere", pid=7, host="another-host", age_seconds=1)
    started = time.monotonic()
    with (
        pytest.raises(StopRequested, match="while waiting for the store's lock"),
        store.lock.held(timeout=60, should_stop=lambda: True),
    ):
        pass
    assert time.monotonic() - started < 5


def test_a_lease_expires_by_the_databases_clock(store: Store) -> None:
    """121 s old by the database's clock, with a 120 s lease: taken over."""
    leave_lease(store, owner="elsewhere", pid=4242, host="replica-b", age_seconds=121)
    assert store.lock.try_acquire() is None
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT owner FROM writer_lock")).scalar() == store.lock.owner


def test_a_lost_lease_is_noticed_by_the_next_heartbeat(store: Store) -> None:
    assert store.lock.try_acquire() is None
    assert store.lock.heartbeat() is True and not store.lock.lost.is_set()
    with store.engine.begin() as conn:  # another replica took it over meanwhile
        conn.execute(text("UPDATE writer_lock SET owner = 'replica-b'"))
    assert store.lock.heartbeat() is False
    assert store.lock.lost.is_set()


def template_12_without_holders(*users: str) -> None:
    """Natecosmic: one food-safety record per user; Monotree: template 12, held by none."""
    records = [record(id=f"r{i}", user_id=u, expires_on=None) for i, u in enumerate(users)]
    respx.get(f"{NATECOSMIC}/v1/certifications").mock(
        return_value=httpx.Response(200, json={"data": records})
    )
    respx.get(f"{MONOTREE}/api/open/v1/certificates").mock(
        return_value=httpx.Response(200, json={"data": [{"id": 12, "title": "Food safety"}]})
    )
    respx.get(f"{MONOTREE}/api/open/v1/certificates/12/users").mock(
        return_value=httpx.Response(200, json={"data": [], "links": {"next": None}})
    )


@respx.mock
def test_a_cycle_that_loses_its_lease_stops_before_its_next_write(tmp_path: Path) -> None:
    """Two assign bodies (chunk size 1); the lease is taken while the first is sent."""
    settings = mocked_api_settings(
        tmp_path,
        '[[types]]\nnatecosmic = "food-safety"\nmonotree = 12\n'
        '[[users]]\nnatecosmic = "nc-ann"\nmonotree = 501\n'
        '[[users]]\nnatecosmic = "nc-bob"\nmonotree = 502\n',
        sync={"chunk_size": 1},
        client={"concurrency": 1},
    )
    template_12_without_holders("nc-ann", "nc-bob")
    store = Store(settings.database_url)

    def taken_meanwhile(_: httpx.Request) -> httpx.Response:
        with store.engine.begin() as conn:  # another replica takes the lease over
            conn.execute(text("UPDATE writer_lock SET owner = 'replica-b'"))
        store.lock.heartbeat()
        return httpx.Response(204)

    assign = respx.post(f"{MONOTREE}/api/open/v1/certificates/assign").mock(
        side_effect=taken_meanwhile
    )
    with open_clients(settings) as clients:
        report = run_sync(settings, store, clients, SyncOptions())
    store.close()
    assert assign.call_count == 1  # the second body was never sent
    assert for_report(report) == EXIT_FAILED and report.error is not None
    assert "writer lease was" in report.error


@respx.mock
def test_an_interrupted_run_is_recorded_as_an_error_never_as_converged(tmp_path: Path) -> None:
    settings = mocked_api_settings(
        tmp_path, '[[types]]\nnatecosmic = "food-safety"\nmonotree = 12\n'
    )

    def interrupted(_: httpx.Request) -> httpx.Response:
        raise KeyboardInterrupt  # Ctrl-C while the pull is read

    respx.get(f"{NATECOSMIC}/v1/certifications").mock(side_effect=interrupted)
    respx.get(f"{MONOTREE}/api/open/v1/certificates").mock(
        return_value=httpx.Response(200, json={"data": []})
    )
    store = Store(settings.database_url)
    with open_clients(settings) as clients, pytest.raises(KeyboardInterrupt):
        run_sync(settings, store, clients, SyncOptions())
    (last,) = store.journal.recent_runs(1)
    store.close()
    assert (last.outcome, last.error) == ("error", "interrupted: KeyboardInterrupt")


def take_over(store: Store) -> None:
    """Another replica takes the writer lease: a new owner and a new epoch."""
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE writer_lock SET owner = 'replica-b', epoch = epoch + 1"))


def test_each_new_holder_gets_a_larger_epoch_and_a_release_keeps_it(
    store: Store, store_url: str
) -> None:
    with store.lock.held(timeout=1):
        first = store.lock.epoch
    other = Store(store_url)
    with other.lock.held(timeout=1):
        second = other.lock.epoch
    other.close()
    with store.lock.held(timeout=1):
        third = store.lock.epoch
    assert first is not None and second == first + 1 and third == first + 2


def test_a_writer_whose_lease_was_taken_writes_no_row(store: Store) -> None:
    """Fencing: the journal write of the old holder fails in its own transaction, whatever
    its clock says, and the database holds nothing of it."""
    with store.lock.held(timeout=1):
        run = store.journal.start_run("incremental")
        take_over(store)
        with pytest.raises(LeaseLostError, match="refused"):
            store.journal.start_run("incremental")
        assert store.lock.lost.is_set() and not store.lock.valid()
    assert [r.id for r in store.journal.recent_runs(5)] == [run]
    with store.engine.connect() as conn:  # the other replica's lease was left alone
        assert conn.execute(text("SELECT owner FROM writer_lock")).scalar() == "replica-b"


def test_recording_a_webhook_is_not_fenced(store: Store) -> None:
    """Any replica may receive a delivery, even one whose lease was just taken: the
    delivery is recorded while the same process's cycle writes are refused."""
    assert store.lock.try_acquire() is None
    take_over(store)
    assert store.deliveries.record("d-1", "monotree.user.registered", 7, None) is True
    with pytest.raises(LeaseLostError):
        store.journal.start_run("incremental")
    assert store.deliveries.waiting() == ["d-1"]


def test_a_lease_not_renewed_in_time_is_not_valid_for_a_write(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Paused past its renewal (SIGSTOP, a database out of reach): no write request may be
    sent, even before anyone else took the lease."""
    clock = [1000.0]
    monkeypatch.setattr("certsync.store.lock.time.monotonic", lambda: clock[0])
    assert store.lock.try_acquire() is None and store.lock.valid()
    clock[0] += 55  # a lease of 120 s: sure for 56 s (half, less a tenth of a beat) ...
    assert store.lock.valid()
    clock[0] += 2  # ... and no longer: the quickest takeover rule waits 60 s
    assert not store.lock.valid()
    assert store.lock.heartbeat() is True and store.lock.valid()


def test_a_lease_still_ours_after_a_release_that_failed_is_confirmed_again(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A release that could not reach the database leaves the row ours; taking it again
    renews it with the same epoch, fences writes again, and is valid for writing."""
    clock = [1000.0]
    monkeypatch.setattr("certsync.store.lock.time.monotonic", lambda: clock[0])
    assert store.lock.try_acquire() is None
    epoch = store.lock.epoch
    # No release reached the database (it was down): the row is still ours.
    clock[0] += 500  # long past the deadline
    assert not store.lock.valid()
    assert store.lock.try_acquire() is None
    assert store.lock.valid() and store.lock.epoch == epoch
    take_over(store)
    with pytest.raises(LeaseLostError):
        store.journal.start_run("incremental")


@respx.mock
def test_a_write_is_not_retried_once_the_lease_is_lost(tmp_path: Path) -> None:
    """Monotree answers 503 to the assign, and meanwhile another replica takes the lease:
    the retry is not sent (a late retry could undo what the new leader did)."""
    settings = mocked_api_settings(
        tmp_path,
        '[[types]]\nnatecosmic = "food-safety"\nmonotree = 12\n'
        '[[users]]\nnatecosmic = "nc-ann"\nmonotree = 501\n',
        client={"concurrency": 1, "backoff_base": 0, "max_attempts": 5},
    )
    template_12_without_holders("nc-ann")
    store = Store(settings.database_url)

    def refused_while_taken(_: httpx.Request) -> httpx.Response:
        take_over(store)
        store.lock.heartbeat()
        return httpx.Response(503, json={"message": "Server Error"})

    assign = respx.post(f"{MONOTREE}/api/open/v1/certificates/assign").mock(
        side_effect=refused_while_taken
    )
    with open_clients(settings) as clients:
        report = run_sync(settings, store, clients, SyncOptions())
    store.close()
    assert assign.call_count == 1
    assert for_report(report) == EXIT_FAILED


def test_a_fenced_sqlite_transaction_holds_the_lease_until_it_commits(tmp_path: Path) -> None:
    """SQLite: the fence takes the database's write lock, so no takeover can slip in
    between the check and the transaction's own writes."""
    path = tmp_path / "fence.db"
    store = Store(f"sqlite:///{path}")
    assert store.lock.try_acquire() is None
    other = sqlite3.connect(path, timeout=0.2)
    try:
        with store._db.write() as conn:  # a fenced transaction, still open
            assert conn is not None
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("UPDATE writer_lock SET owner = 'replica-b', epoch = epoch + 1")
    finally:
        other.close()
        store.close()


def test_a_store_behind_this_certsync_keeps_its_epochs_through_the_upgrade(
    store_url: str,
) -> None:
    """A store at 0010 (epochs exist) but older than head: the lease taken before the
    upgrade keeps fencing and renewing with the row's real epoch after it."""
    first = Store(store_url)
    with first.lock.held(timeout=1):
        pass
    with first.lock.held(timeout=1):  # epoch 2 now
        pass
    with first.engine.begin() as conn:  # as a release before 0011 left it
        command.downgrade(schema._config(conn), "0010")
    first.close()
    behind = Store(store_url)
    assert not behind.is_current
    with behind.lock.held(timeout=1):
        assert behind.lock.epoch == 3
        assert behind.upgrade() is not None
        behind.journal.start_run("incremental")  # fenced with epoch 3: passes
        assert behind.lock.heartbeat() is True
    behind.close()
