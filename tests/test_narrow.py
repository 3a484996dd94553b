"""A cycle after a change decides again only for the people it touched, and says what a
decision over everyone says; anything it cannot vouch for makes it decide whole.
Against the sandbox over real HTTP."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any
from unittest import mock

import pytest

from certsync.clients.session import open_clients
from certsync.engine.cycle import run_sync
from certsync.engine.report import SyncOptions
from certsync.models import Holding
from certsync.sandbox import SandboxState, World, generate
from certsync.store import Store
from certsync.store.holdings import HoldingStore
from tests.conftest import Cli, revoke_upstream
from tests.test_e2e import sync

pytestmark = pytest.mark.e2e


@pytest.fixture
def world(sandbox_state: SandboxState, cli: Cli) -> World:
    w = generate(sandbox_state, users=30, types=3, seed=11, today=date.today())
    (cli.cwd / "mappings.toml").write_text(w.mapping_toml)
    return w


def said(doc: dict[str, Any]) -> tuple[Any, ...]:
    """What a run's report says of the tenant, whoever it decided for."""
    return doc["plan"], doc["counts"], doc["write_requests"]


def renew_upstream(state: SandboxState, index: int) -> None:
    with state.lock:
        record = state.records[index]
        state.records[index] = {**record, "issued_on": date.today().isoformat()}


def test_a_change_is_decided_again_for_its_people_alone_and_says_the_whole_plan(
    cli: Cli, sandbox_state: SandboxState, world: World
) -> None:
    first = sync(cli)  # full: reads every template; owned nothing before, keeps nothing
    assert first["decided_again_for"] is None and first["write_requests"]
    kept = sync(cli)  # decides over everyone, and keeps it by person
    assert kept["decided_again_for"] is None and kept["write_requests"] == []
    assert sync(cli)["unchanged_since"] is not None  # quiet: carries the kept decision on

    cert, user = revoke_upstream(sandbox_state, world, 0)
    renew_upstream(sandbox_state, 5)
    whole = sync(cli, "--dry-run")  # a dry run always decides over everyone
    assert whole["decided_again_for"] is None and whole["write_requests"]
    again = sync(cli)
    assert again["decided_again_for"] is not None
    assert 1 <= again["decided_again_for"] < len(world.monotree_ids)
    assert said(again) == said(whole) and again["outcome"] == "converged"
    assert any(
        r["certificate_id"] == cert and r["user_id"] == user for r in again["plan"]["revoke"]
    )

    # The people it wrote to are decided again next: nothing left to do, then quiet.
    after = sync(cli)
    assert after["decided_again_for"] is not None and after["write_requests"] == []
    assert said(after) == said(sync(cli, "--dry-run"))
    assert sync(cli)["unchanged_since"] is not None

    # What a person reads in the terminal says so, in a line that fits it.
    renew_upstream(sandbox_state, 7)
    table = cli("sync")
    assert table.returncode == 0, table.stderr[-2000:]
    said_again = [line for line in table.stdout.splitlines() if "decided again" in line]
    assert len(said_again) == 1 and "person(s) a change touched" in said_again[0]
    assert len(said_again[0]) <= 100
    # After a full cycle that sent nothing, nobody is touched: the kept plan stands.
    assert sync(cli, "--full")["write_requests"] == []
    table = cli("sync")
    assert "no one's records, mappings or certificates moved" in table.stdout


def test_swapped_user_mappings_are_decided_again_for_both_people(
    cli: Cli, sandbox_state: SandboxState, world: World
) -> None:
    sync(cli)
    sync(cli)
    mappings = cli.cwd / "mappings.toml"
    # Two people's Monotree accounts swapped: each one's certificates go to the other.
    a, b = (
        f'natecosmic = "{world.user_ids[i]}"\nmonotree = {world.monotree_ids[i]}\n' for i in (0, 1)
    )
    text = mappings.read_text()
    assert a in text and b in text
    swapped = a.replace(str(world.monotree_ids[0]), "B"), b.replace(str(world.monotree_ids[1]), "A")
    text = text.replace(a, swapped[0]).replace(b, swapped[1])
    mappings.write_text(
        text.replace("= B\n", f"= {world.monotree_ids[1]}\n").replace(
            "= A\n", f"= {world.monotree_ids[0]}\n"
        )
    )
    whole = sync(cli, "--dry-run")
    again = sync(cli)
    assert again["error"] is None, again["error"]
    assert again["decided_again_for"] is not None and said(again) == said(whole)
    moved = [*again["plan"]["assign"], *again["plan"]["renew"], *again["plan"]["kept_newer"]]
    assert {item["user_id"] for item in moved} == set(world.monotree_ids[:2])


def test_what_cannot_be_vouched_for_is_decided_whole(
    cli: Cli, sandbox_state: SandboxState, world: World
) -> None:
    sync(cli)
    sync(cli)

    # A type mapping changed: every person's part may change.
    mappings = cli.cwd / "mappings.toml"
    mappings.write_text(
        mappings.read_text()
        + f'\n[[types]]\nnatecosmic = "not-yet-used"\nmonotree = {world.template_ids[0]}\n'
    )
    renew_upstream(sandbox_state, 1)
    assert sync(cli)["decided_again_for"] is None

    # Another run in between (one person's sync) may have written anywhere.
    renew_upstream(sandbox_state, 2)
    assert sync(cli, "--user", str(world.monotree_ids[3]))["kind"] == "user"
    assert sync(cli)["decided_again_for"] is None

    # A template read in full (an admin's change by hand moved its count).
    renew_upstream(sandbox_state, 3)
    holders = sorted(sandbox_state.api_issued_active())
    sandbox_state.unassign(*holders[0])
    read = sync(cli)
    assert read["templates_read"] and read["decided_again_for"] is None

    # Tomorrow: a record may expire on a date.
    renew_upstream(sandbox_state, 4)
    settings = cli.settings()
    store = Store(settings.database_url)
    try:
        with open_clients(settings) as clients:
            tomorrow = date.today() + timedelta(days=1)
            report = run_sync(settings, store, clients, SyncOptions(today=tomorrow))
            assert report.error is None and report.decided_again is None
            renew_upstream(sandbox_state, 6)
            report = run_sync(settings, store, clients, SyncOptions(today=tomorrow))
            assert report.error is None and report.decided_again is not None
    finally:
        store.close()


def test_a_decision_made_again_reads_only_its_peoples_holdings(
    cli: Cli, sandbox_state: SandboxState, world: World
) -> None:
    sync(cli)
    sync(cli)
    renew_upstream(sandbox_state, 1)
    settings = cli.settings()
    store = Store(settings.database_url)
    asked: list[object] = []
    real_known = HoldingStore.known

    def known(
        self: HoldingStore, certificate_ids: Iterable[int], user_ids: Iterable[int] | None = None
    ) -> dict[int, dict[int, Holding]]:
        asked.append(None if user_ids is None else sorted(user_ids))
        return real_known(self, certificate_ids, user_ids)

    try:
        with (
            open_clients(settings) as clients,
            # Neither every holding nor every pair certsync owns is read.
            mock.patch.object(HoldingStore, "owned_pairs", side_effect=AssertionError),
            mock.patch.object(HoldingStore, "known", known),
        ):
            report = run_sync(settings, store, clients)
        assert report.error is None and report.decided_again is not None
        assert asked and all(isinstance(a, list) and len(a) == report.decided_again for a in asked)
    finally:
        store.close()
