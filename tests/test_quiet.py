"""A quiet cycle: nothing a decision is made from changed since a cycle that had nothing
to do, so no body is decoded and no plan made. Against the sandbox over real HTTP."""

from __future__ import annotations

import json
import subprocess
from datetime import date, timedelta
from typing import Any
from unittest import mock

import pytest

from certsync.clients.session import open_clients
from certsync.engine.cycle import run_sync
from certsync.engine.quiet import QuietCheck, QuietRecord, inputs_digest, reckoned_on
from certsync.engine.report import SyncOptions
from certsync.models import Mappings
from certsync.sandbox import SandboxState, World, generate
from certsync.store import Store
from certsync.store.holdings import HoldingStore
from certsync.store.made_from import MadeFrom
from certsync.store.mappings import MappingStore
from certsync.store.snapshot import PullSnapshots
from tests.conftest import Cli
from tests.test_e2e import sync

pytestmark = pytest.mark.e2e


@pytest.fixture
def world(sandbox_state: SandboxState, cli: Cli) -> World:
    w = generate(sandbox_state, users=20, types=2, seed=5, today=date.today())
    (cli.cwd / "mappings.toml").write_text(w.mapping_toml)
    return w


def decided(doc: dict[str, Any]) -> bool:
    """The run decoded a pull and made a plan (only a planning run times its plan)."""
    return doc["unchanged_since"] is None and "plan_cpu_seconds" in doc["timings"]


def test_a_cycle_on_unchanged_inputs_decodes_and_plans_nothing(
    cli: Cli, sandbox_state: SandboxState, world: World
) -> None:
    sync(cli)  # the first run is full: it reads every template
    planned = sync(cli)
    assert decided(planned) and planned["write_requests"] == []
    sandbox_state.reset_counts()
    quiet = sync(cli)
    assert quiet["unchanged_since"] == planned["run_id"] and not decided(quiet)
    assert quiet["outcome"] == "converged" and quiet["counts"] == planned["counts"]
    assert quiet["pull"]["records"] == planned["pull"]["records"]
    # The pull a 304, the template list one read: nothing else.
    assert sandbox_state.statuses["natecosmic 304"] == 1
    assert quiet["requests_by_api"] == {"monotree": 1, "natecosmic": 1}
    again = sync(cli)
    assert again["unchanged_since"] == quiet["run_id"]  # a quiet run hands the inputs on
    # A dry run decides (and is no run: the next cycle is still quiet) ...
    assert decided(sync(cli, "--dry-run"))
    assert not decided(sync(cli))
    # ... a full cycle asks for the pull whole (a wrong 304 is caught there), and reads.
    sandbox_state.reset_counts()
    assert decided(sync(cli, "--full"))
    assert sandbox_state.statuses["natecosmic 200"] == 1
    assert decided(sync(cli))  # the run before it was no quiet one
    # A run that failed (a wrong Monotree token) was no quiet one either.
    failed = cli("sync", CERTSYNC_MONOTREE__TOKEN="wrong")
    assert failed.returncode == 2
    assert decided(sync(cli))
    assert not decided(sync(cli))
    table = cli("sync")
    assert table.returncode == 0
    assert "unchanged since run" in table.stdout and "so no new plan" in table.stdout
    # The one line a container's log keeps of the cycle says it too.
    logged = [json.loads(line) for line in table.stderr.splitlines() if line.startswith("{")]
    finished = [e for e in logged if e["event"] == "sync.finished"]
    assert len(finished) == 1 and finished[0]["unchanged_since"] is not None
    assert max(len(line) for line in table.stdout.splitlines()) <= 100  # fits a terminal

    # Without any validator the body comes whole; the same bytes are still not decoded.
    sandbox_state.etags = sandbox_state.last_modified = False
    sync(cli)  # the kept validators differ: decoded once, kept without them
    sandbox_state.reset_counts()
    same = sync(cli)
    assert sandbox_state.statuses["natecosmic 200"] == 1 and not decided(same)


def test_a_changed_body_mapping_or_day_or_a_run_between_forces_a_decision(
    cli: Cli, sandbox_state: SandboxState, world: World
) -> None:
    sync(cli)
    sync(cli)
    assert not decided(sync(cli))

    mappings = cli.cwd / "mappings.toml"
    mappings.write_text(
        mappings.read_text()
        + f'\n[[types]]\nnatecosmic = "not-yet-used"\nmonotree = {world.template_ids[0]}\n'
    )
    assert decided(sync(cli))
    assert not decided(sync(cli))

    with sandbox_state.lock:  # one field of one record: another body
        sandbox_state.records[0] = {**sandbox_state.records[0], "serial_number": "S-2"}
    changed = sync(cli)
    assert decided(changed) and changed["pull"]["since_last"]["added"] == 0
    assert not decided(sync(cli))

    # A run of another kind in between (here one person's sync) may have written.
    one = sync(cli, "--user", str(world.monotree_ids[0]))
    assert one["kind"] == "user"
    assert decided(sync(cli))
    assert not decided(sync(cli))

    # Tomorrow, the same body may mean another plan (a certificate expires on a day).
    settings = cli.settings()
    store = Store(settings.database_url)
    try:
        with open_clients(settings) as clients:
            tomorrow = date.today() + timedelta(days=1)
            report = run_sync(settings, store, clients, SyncOptions(today=tomorrow))
            assert report.unchanged_since is None and "plan_cpu_seconds" in report.timings
            # Quiet: neither the body nor the kept snapshot is decoded.
            # Nor is the mapping file parsed again: its bytes are those last imported;
            # nor are the user mappings read: their revision stands for them; nor are
            # the holdings grouped: the counts expected today are the run before's.
            with (
                mock.patch.object(HoldingStore, "count_basis", side_effect=AssertionError),
                mock.patch("certsync.engine.pulled.decode_pull", side_effect=AssertionError),
                mock.patch.object(PullSnapshots, "load", side_effect=AssertionError),
                mock.patch(
                    "certsync.engine.imported.load_mapping_file", side_effect=AssertionError
                ),
                mock.patch.object(MappingStore, "users", side_effect=AssertionError),
            ):
                report = run_sync(settings, store, clients, SyncOptions(today=tomorrow))
            assert report.unchanged_since is not None and report.error is None
    finally:
        store.close()


def test_the_mapping_file_is_imported_again_whenever_the_store_may_differ(
    cli: Cli, sandbox_state: SandboxState, world: World
) -> None:
    """Its bytes unchanged, a cycle does not parse it again; an import of another file
    in between, or a change to it, has the next cycle import it (and prune) again; a
    broken one fails the cycle as before."""

    def imported(result: subprocess.CompletedProcess[str]) -> bool:
        return '"mappings.imported"' in result.stderr

    assert imported(cli("sync"))
    assert not imported(cli("sync"))
    other = cli.cwd / "other.toml"
    other.write_text('[[types]]\nnatecosmic = "elsewhere"\nmonotree = 1\n')
    assert cli("mappings", "import", "--prune", str(other)).returncode == 0
    again = cli("sync")
    assert again.returncode == 0 and imported(again)
    mappings = cli.cwd / "mappings.toml"
    mappings.write_text(mappings.read_text() + '\n[[types]]\nnatecosmic = "x"\n')
    broken = cli("sync")
    assert broken.returncode == 2 and "mappings.toml" in broken.stderr


def test_the_digest_moves_with_the_mappings_revision_and_what_emails_resolve_to() -> None:
    """The mappings stand in a quiet cycle's digest as their revision, and as what
    Monotree's users make of the mappings by email: a new hire's email resolves one."""
    made_from = MadeFrom(source="http://127.0.0.1:1", digest="a" * 64, etag='"1"')
    check = QuietCheck(date(2026, 11, 30), 500)
    nothing = Mappings(types={}, users={})

    def digest(revision: str, by_email: dict[str, int], removed: Mappings = nothing) -> str:
        return inputs_digest(
            made_from=made_from,
            mappings_revision=revision,
            by_email=by_email,
            removed=removed,
            unresolved=(),
            templates={},
            check=check,
        )

    base = digest("r1", {})
    assert digest("r1", {}) == base
    assert digest("r2", {}) != base
    assert digest("r1", {"nc-7": 7}) != base
    assert digest("r1", {"nc-7": 7}) != digest("r1", {"nc-7": 8})
    assert digest("r1", {}, Mappings(types={}, users={"nc-9": 9})) != base


def test_the_counts_a_quiet_run_expected_stand_only_that_day_and_release(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The template counts a run with nothing to do expected are reused by the next
    run only on the same UTC day (a holding may expire overnight) and by the same
    release (whose reckoning may differ); kept in the store, they come back whole."""
    day = date(2026, 12, 1)
    kept = QuietRecord("run1", 7, "d" * 64, 120, {"assign": 0}, reckoned_on(day), {12: (24, 3, 5)})
    back = QuietRecord.loads(kept.dumps())
    assert back == kept
    assert back.ranges_on(day) == {12: (24, 3, 5)}
    assert back.ranges_on(day + timedelta(days=1)) == {}
    monkeypatch.setattr("certsync.engine.quiet.__version__", "99.0.0")
    assert back.ranges_on(day) == {}
    assert QuietRecord.loads("{not json") is None and QuietRecord.loads(None) is None
