"""Drift caught every cycle: a change made by hand in Monotree moves its template's
`active_users_count`, and the next incremental cycle reads that template in full.
Against the sandbox over real HTTP, through the installed command."""

from __future__ import annotations

import math
from datetime import date
from unittest import mock

import pytest

from certsync.clients.session import open_clients
from certsync.engine.counts import count_ranges, counts_moved, expected_range
from certsync.engine.cycle import run_sync
from certsync.models import CountRow, Template
from certsync.months import add_months
from certsync.sandbox import SandboxState, World, generate
from certsync.sandbox.state import MonotreeUser
from certsync.store import Store
from certsync.store.holdings import HoldingStore
from tests.conftest import Cli
from tests.test_e2e import sync

pytestmark = pytest.mark.e2e
TODAY = date.today()


@pytest.fixture
def world(sandbox_state: SandboxState, cli: Cli) -> World:
    w = generate(sandbox_state, users=120, types=3, seed=3, today=TODAY)
    (cli.cwd / "mappings.toml").write_text(w.mapping_toml)
    return w


def held_by_certsync(state: SandboxState) -> tuple[int, int]:
    """A desired holding certsync assigned, on the template with the most holders."""
    pairs = sorted(state.api_issued_active())
    cert = max({c for c, _ in pairs}, key=lambda c: len(state.holders(c)))
    return next(p for p in pairs if p[0] == cert)


def test_a_hand_unassign_is_repaired_on_the_next_cycle_for_a_few_requests(
    cli: Cli, sandbox_state: SandboxState, world: World
) -> None:
    sync(cli)  # the first full cycle reads every template, and calibrates its count
    quiet = sync(cli)
    assert quiet["templates_read"] == [] and quiet["counts_untrusted"] == []
    cert, user = held_by_certsync(sandbox_state)
    sandbox_state.unassign(cert, user)
    assert (cert, user) not in sandbox_state.active_pairs()
    holders = len(sandbox_state.holders(cert))
    sandbox_state.reset_counts()

    doc = sync(cli)
    assert doc["templates_read"] == [cert] and doc["counts"]["assign"] == 1
    assert doc["counts_moved"] == {
        str(cert): sandbox_state.template_json(sandbox_state.templates[cert])["active_users_count"]
        - 1
    }
    assert (cert, user) in sandbox_state.active_pairs()
    templates = len(sandbox_state.templates)
    # The pull, the template list, that one template's holders, and the assign.
    assert sandbox_state.count("natecosmic") == 1
    assert sandbox_state.count("monotree", "GET") == math.ceil(templates / 50) + math.ceil(
        holders / 50
    )
    assert sandbox_state.count("monotree", "POST") == 1
    table = cli("sync")
    assert "nothing to do" in table.stdout or "No changes" in table.stdout
    assert sync(cli)["templates_read"] == []  # the repair is what certsync now knows


def test_after_a_run_with_nothing_to_do_its_expected_counts_still_catch_a_hand_change(
    cli: Cli, sandbox_state: SandboxState, world: World
) -> None:
    """The run before had nothing to do, so the store holds what it held then: the
    counts it expected today stand, and the holdings are not grouped again. A hand
    unassign moves its template's count out of them all the same."""
    sync(cli)
    assert sync(cli)["write_requests"] == []  # nothing to do: its expected counts kept
    cert, user = held_by_certsync(sandbox_state)
    sandbox_state.unassign(cert, user)
    settings = cli.settings()
    store = Store(settings.database_url)
    try:
        with (
            open_clients(settings) as clients,
            mock.patch.object(HoldingStore, "count_basis", side_effect=AssertionError),
        ):
            report = run_sync(settings, store, clients)
        assert report.error is None and report.templates_read == [cert]
        assert (cert, user) in sandbox_state.active_pairs()
    finally:
        store.close()
    # The repair wrote holdings: the next run decides again and finds no drift in
    # them, and the one after it is quiet.
    after = sync(cli)
    assert after["templates_read"] == [] and after["unchanged_since"] is None
    assert after["write_requests"] == []
    assert sync(cli)["unchanged_since"] == after["run_id"]


def test_kept_count_ranges_are_reckoned_again_for_another_validity_or_when_missing() -> None:
    def template(cert: int, validity: int | None, count: int) -> Template:
        return Template(cert, f"T{cert}", validity_months=validity, active_users_count=count)

    listed = {1: template(1, 12, 5), 2: template(2, 24, 5), 3: template(3, 12, 9)}
    kept = {1: (12, 5, 5), 2: (12, 5, 5)}  # 2 was reckoned with another validity
    asked: list[list[int]] = []

    def basis_of(certs: list[int]) -> dict[int, list[CountRow]]:
        asked.append(certs)
        return {c: [(True, None, D, 7)] for c in certs}

    ranges = count_ranges([1, 2, 3], listed, kept, basis_of, D)
    assert asked == [[2, 3]]
    assert ranges == {1: (12, 5, 5), 2: (24, 7, 7), 3: (12, 7, 7)}
    assert [m.certificate_id for m in counts_moved(listed, ranges)] == [2, 3]
    assert count_ranges([1], listed, kept, basis_of, D) == {1: (12, 5, 5)} and len(asked) == 1


def test_a_hand_assign_is_read_and_revoked_only_where_the_type_is_authoritative(
    cli: Cli, sandbox_state: SandboxState, world: World
) -> None:
    sync(cli)
    cert, _ = held_by_certsync(sandbox_state)
    stranger = 990_001
    sandbox_state.add_user(MonotreeUser(stranger, "Hand Picked", "hand@example.com"))
    sandbox_state.issue(cert, stranger, TODAY)
    doc = sync(cli)
    assert doc["templates_read"] == [cert] and doc["write_requests"] == []
    assert (cert, stranger) in sandbox_state.active_pairs()  # not certsync's: left alone

    mappings = cli.cwd / "mappings.toml"
    mappings.write_text(
        mappings.read_text().replace(
            f"monotree = {cert}\n", f"monotree = {cert}\nauthoritative = true\n"
        )
    )
    sandbox_state.issue(cert, stranger + 1, TODAY)  # a second one, seen by its count
    sandbox_state.add_user(MonotreeUser(stranger + 1, "Also Picked", "also@example.com"))
    doc = sync(cli)
    assert doc["templates_read"] == [cert] and doc["counts"]["revoke"] == 2
    assert {(cert, stranger), (cert, stranger + 1)}.isdisjoint(sandbox_state.active_pairs())


def test_a_template_whose_count_does_not_match_is_not_trusted(
    cli: Cli, sandbox_state: SandboxState, world: World
) -> None:
    """The sandbox counts every holder; the holder list shows only registered, active
    users. A template with a deactivated holder never matches its count: a hand change
    there waits for the full cycle, and `status` says so."""
    sync(cli)
    cert, _ = held_by_certsync(sandbox_state)
    hidden = 990_100
    sandbox_state.add_user(MonotreeUser(hidden, "Left", "left@example.com", active=False))
    sandbox_state.issue(cert, hidden, TODAY)
    sync(cli, "--full")  # reads it, and finds its count one above the holders it lists
    status = cli("status")
    assert f"drift check off for 1 template(s) ({cert})" in status.stdout

    # Two taken away: the count moves (a trusted template would be read at once).
    taken = [p for p in sorted(sandbox_state.api_issued_active()) if p[0] == cert][:2]
    for pair in taken:
        sandbox_state.unassign(*pair)
    doc = sync(cli)
    assert doc["templates_read"] == [] and doc["counts_untrusted"] == [cert]
    assert set(taken).isdisjoint(sandbox_state.active_pairs())  # left to the full cycle
    sync(cli, "--full")
    assert set(taken) <= set(sandbox_state.active_pairs())


D = date(2026, 11, 30)


@pytest.mark.parametrize(
    ("row", "validity", "expected"),
    [
        ((True, None, D, 3), 12, (3, 3)),  # never expires
        ((True, date(2026, 12, 1), D, 3), 12, (3, 3)),
        ((True, D, D, 3), 12, (0, 3)),  # expires today: may or may not count by now
        ((True, date(2026, 11, 29), D, 3), 12, (0, 0)),
        ((False, None, D, 3), None, (3, 3)),  # a template without validity
        ((False, None, date(2026, 6, 1), 3), 12, (3, 3)),  # reckoned: June 2027
        ((False, None, date(2025, 12, 15), 3), 12, (0, 3)),  # reckoned: in 15 days
        ((False, None, date(2025, 10, 1), 3), 12, (0, 0)),  # reckoned: two months ago
        ((False, None, None, 3), 12, (0, 3)),  # nothing to reckon from
    ],
)
def test_the_count_expected_of_what_certsync_knows(
    row: tuple[bool, date | None, date | None, int],
    validity: int | None,
    expected: tuple[int, int],
) -> None:
    assert expected_range([row], validity, D) == expected


def test_months_are_added_as_calendars_do() -> None:
    assert add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert add_months(date(2026, 11, 30), 14) == date(2028, 1, 30)
