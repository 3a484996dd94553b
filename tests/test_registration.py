"""Registrations handled in groups: what arrived while the runner was busy is synced
together, one pull at most, each delivery marked with the run that handled it."""

from __future__ import annotations

import os
from datetime import date
from unittest import mock

import pytest

from certsync.clients.session import open_clients
from certsync.engine.registration import sync_registered
from certsync.sandbox import SandboxState, World, generate
from certsync.sandbox.faults import Fault
from certsync.service.envelope import REGISTERED
from certsync.settings import Settings, load_settings
from certsync.store import Store
from tests.conftest import Cli
from tests.test_e2e import sync

pytestmark = pytest.mark.e2e


def _pending_hires(cli: Cli, sandbox_state: SandboxState) -> tuple[World, list[int]]:
    """A synced world of twelve, two of whom (mapped by email) have invites pending."""
    world = generate(sandbox_state, users=12, types=2, seed=6, today=date.today(), email_every=3)
    hires = [world.monotree_ids[3], world.monotree_ids[6]]
    for hire in hires:
        sandbox_state.update_user(hire, registered=False)
    (cli.cwd / "mappings.toml").write_text(world.mapping_toml)
    sync(cli)
    return world, hires


def _store_of(cli: Cli) -> tuple[Settings, Store]:
    """The settings the CLI runs with, and the store they name."""
    with mock.patch.dict(os.environ, cli.env, clear=True):
        settings = load_settings()
    return settings, Store(settings.database_url)


def test_deliveries_that_waited_together_are_synced_in_one_run(
    cli: Cli, sandbox_state: SandboxState
) -> None:
    world, hires = _pending_hires(cli, sandbox_state)
    assert not any(user in hires for _, user in sandbox_state.active_pairs())

    settings, store = _store_of(cli)
    try:
        for hire in hires:
            sandbox_state.update_user(hire, registered=True)
        store.deliveries.record_many(
            [
                ("d-1", REGISTERED, hires[0], sandbox_state.users[hires[0]].email),
                ("d-2", REGISTERED, hires[1], sandbox_state.users[hires[1]].email),
                ("d-3", REGISTERED, 990_001, "nobody@example.com"),  # no mapping names them
                ("d-4", REGISTERED, world.monotree_ids[1], None),  # mapped by id, synced already
            ]
        )
        sandbox_state.reset_counts()
        with open_clients(settings) as clients:
            ids = ["d-1", "d-2", "d-3", "d-4"]
            report, waits = sync_registered(settings, store, clients, ids)
            assert report is not None and report.error is None
            assert len(waits) == 2  # the hires were assigned certificates; d-4's user had all
            held = {user for _, user in sandbox_state.active_pairs()}
            assert set(hires) <= held
            assert sandbox_state.count("natecosmic") <= 1  # one pull for both, or the kept one
            assert report.kind == "user"  # scoped to them: nobody else's certificates read
            states = {d.id: (d.state, d.run_id) for d in store.deliveries.get(ids)}
            assert states == {
                "d-1": ("applied", report.run_id),
                "d-2": ("applied", report.run_id),
                "d-3": ("no-mapping", None),
                "d-4": ("applied", report.run_id),
            }
            # Handled already: a second call (a replica that found them too) does nothing.
            sandbox_state.reset_counts()
            assert sync_registered(settings, store, clients, ids) == (None, [])
            assert sandbox_state.count() == 0
    finally:
        store.close()


def test_a_group_whose_sync_fails_is_marked_failed_and_a_stop_leaves_it_waiting(
    cli: Cli, sandbox_state: SandboxState
) -> None:
    world = generate(sandbox_state, users=6, types=2, seed=3, today=date.today())
    (cli.cwd / "mappings.toml").write_text(world.mapping_toml)
    sync(cli)
    settings, store = _store_of(cli)
    ids = [f"d-{u}" for u in world.monotree_ids[:2]]
    try:
        store.deliveries.record_many(
            [(f"d-{u}", REGISTERED, u, None) for u in world.monotree_ids[:2]]
        )
        with open_clients(settings) as clients:
            # A stop before the reads: nothing is read, both stay waiting for the next leader.
            sandbox_state.reset_counts()
            report, waits = sync_registered(settings, store, clients, ids, should_stop=lambda: True)
            assert report is not None and waits == []
            assert sandbox_state.count("monotree", "GET") == 0
            assert store.deliveries.waiting() == ids
            # Monotree refuses a user's certificates: the sync fails, and says so for both.
            sandbox_state.script(
                Fault(match="GET /v1/users/.*", kind="status", status=400, times=5)
            )
            report, waits = sync_registered(settings, store, clients, ids)
            assert report is not None and report.error is not None and waits == []
            kept = store.deliveries.get(ids)
            assert [(d.state, d.run_id) for d in kept] == [("failed", report.run_id)] * 2
    finally:
        store.close()


def test_a_failed_write_fails_only_the_deliveries_of_its_users(
    cli: Cli, sandbox_state: SandboxState
) -> None:
    _world, hires = _pending_hires(cli, sandbox_state)
    settings, store = _store_of(cli)
    try:
        for hire in hires:
            sandbox_state.update_user(hire, registered=True)
        store.deliveries.record_many(
            [(f"d-{u}", REGISTERED, u, sandbox_state.users[u].email) for u in hires]
        )
        # Three assign requests refused for good: the batch, then the halves certsync
        # splits it into, down to one user's request.
        sandbox_state.script(Fault(match="POST .*/assign", kind="status", status=400, times=3))
        with open_clients(settings) as clients:
            report, waits = sync_registered(settings, store, clients, [f"d-{u}" for u in hires])
        assert report is not None and report.error is None
        refused = {u for f in report.result.failures for u in f.user_ids}
        assert refused and not refused.issuperset(hires)  # one hire's write failed, not both
        states = {d.id: d.state for d in store.deliveries.get([f"d-{u}" for u in hires])}
        assert states == {f"d-{u}": "failed" if u in refused else "applied" for u in hires}
        assert len(waits) == 1  # the other hire's certificates were assigned
    finally:
        store.close()
