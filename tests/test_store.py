"""The store: every table round-trips, schemas upgrade, newer files are refused, one writer."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect

from certsync.errors import LockBusyError, StoreError
from certsync.mappings_file import MappingFile
from certsync.models import (
    Holding,
    Policy,
    TypeMapping,
    UserMapping,
)
from certsync.store import Store, schema
from certsync.store.db import Db
from certsync.store.holdings import mark_dirty
from certsync.store.tables import metadata
from certsync.writes import AssignItem, AssignRequest, ResetRequest
from tests.conftest import CERTSYNC, clean_env
from tests.postgres import Postgres

FIXTURES = Path(__file__).parent / "fixtures"


def test_a_delivery_is_recorded_as_soon_as_another_writer_lets_go(tmp_path: Path) -> None:
    """SQLite: the receiver asks for the write lock every millisecond (SQLite's own busy
    handler sleeps up to 25 ms a try), gives up with a StoreError past its wait, and the
    connection goes back to the pool with its usual busy timeout."""
    path = tmp_path / "c.db"
    s = Store(f"sqlite:///{path}")
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    released: list[float] = []

    def release() -> None:
        time.sleep(0.3)
        released.append(time.monotonic())
        other.execute("COMMIT")

    holder = threading.Thread(target=release)
    holder.start()
    assert s.deliveries.record_many([("d-1", "monotree.user.registered", 7, None)]) == [True]
    written = time.monotonic()
    holder.join()
    assert released and written >= released[0]  # it waited for the lock, then wrote
    assert s.deliveries.get(["d-1"])

    # Redeliveries alone are known from a read: they wait for no writer.
    other.execute("BEGIN IMMEDIATE")
    asked = time.monotonic()
    again = s.deliveries.record_many([("d-1", "monotree.user.registered", 7, None)] * 3)
    assert again == [False, False, False] and time.monotonic() - asked < 2  # not 10 s
    other.execute("ROLLBACK")

    other.execute("BEGIN IMMEDIATE")
    db = Db(s.engine)
    db.current = True
    with pytest.raises(StoreError, match="could not be written"), db.write_promptly(wait=0.2):
        pass
    other.execute("ROLLBACK")
    with s.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10000
    other.close()
    s.close()


def mapping_file(
    tmp_path: Path, types: list[TypeMapping], users: list[UserMapping], policy: Policy = Policy()
) -> MappingFile:
    return MappingFile(tmp_path / "m.toml", policy, tuple(types), tuple(users))


def test_new_database_file_is_owner_only(tmp_path: Path) -> None:
    """A new SQLite file is created with 0600 permissions, WAL journal and foreign keys on."""
    s = Store(f"sqlite:///{tmp_path / 'new.db'}")
    mode = stat.S_IMODE((tmp_path / "new.db").stat().st_mode)
    assert mode == 0o600
    with s.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10000


def differences(engine: Engine) -> list[object]:
    """What Alembic's autogenerate would change to make the database match the models."""
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))


def test_migrating_an_empty_database_to_head_matches_the_models_exactly(store: Store) -> None:
    """The schema is written once (the models); the migrations make exactly it."""
    assert store.schema_revision() == schema.head()
    assert differences(store.engine) == []
    assert set(inspect(store.engine).get_table_names()) == {
        *(t.name for t in metadata.sorted_tables),
        "alembic_version",
    }


def test_the_revisions_certsync_reads_from_file_names_are_alembics() -> None:
    """Commands learn the head without loading Alembic; Alembic must agree, with one head."""
    scripts = ScriptDirectory(str(Path(schema.__file__).parent / "migrations"))
    assert schema.known_revisions() == {s.revision for s in scripts.walk_revisions()}
    assert scripts.get_heads() == [schema.head()]


def load_fixture(path: Path, name: str) -> None:
    con = sqlite3.connect(path)
    con.executescript((FIXTURES / name).read_text())
    con.close()


def row_counts(path: Path) -> dict[str, int]:
    con = sqlite3.connect(path)
    tables = [t for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    counts = {
        t: con.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0]  # noqa: S608 - names from sqlite_master
        for t in tables
    }
    con.close()
    return counts


def test_a_store_of_the_release_before_alembic_upgrades_without_losing_a_row(
    tmp_path: Path,
) -> None:
    """tests/fixtures/store_v2.sql is what the last release wrote, a row in every table."""
    path = tmp_path / "v2.db"
    load_fixture(path, "store_v2.sql")
    before = row_counts(path)
    s = Store(f"sqlite:///{path}")
    assert not s.is_current
    with pytest.raises(StoreError, match="run `certsync db upgrade`"):
        s.holdings.owned_pairs()  # nothing is read from, or written to, an older schema
    assert s.upgrade() == ("0002", schema.head())
    s.close()
    after = row_counts(path)
    kept = {t: n for t, n in before.items() if t != "certsync_schema"}
    assert {t: n for t, n in after.items() if t in kept} == kept  # not a row lost
    assert {t: n for t, n in after.items() if t not in kept} == {
        "alembic_version": 1,
        "removed_mapping": 0,  # added by 0005, empty until a mapping is removed
        "journal_item": 1,  # added by 0007, made from the journal's one assign
        "held_plan": 0,  # added by 0008, empty until the guard holds revocations back
        "held_revoke": 0,
        "webhook_delivery": 0,  # added by 0009
    }
    s = Store(f"sqlite:///{path}")
    assert s.is_current and s.upgrade() is None
    assert set(s.holdings.owned_pairs()) == {(12, 501)}
    assert s.mappings.types() == [TypeMapping("food-safety", 12)]
    assert s.users.by_email() == {"bob@example.com": 502}
    assert s.journal.recent_runs(1)[0].requests == {"monotree POST 200": 1}
    # The first releases wrote TEXT where the models say VARCHAR, which SQLite's type
    # affinity treats alike; no table, column or index is missing or extra.
    structural = [
        d
        for d in differences(s.engine)
        if not (isinstance(d, list) and d[0][0] in ("modify_type", "modify_nullable"))
    ]
    assert structural == []


def test_an_older_store_still_answers_a_ping(tmp_path: Path) -> None:
    """A new replica's readiness on a store the old leader has not upgraded yet: reachable,
    so it stands by, ready, instead of stalling a rolling update."""
    path = tmp_path / "v2.db"
    load_fixture(path, "store_v2.sql")
    s = Store(f"sqlite:///{path}")
    assert not s.is_current
    s.ping()
    s.close()


def test_a_store_of_the_release_before_the_audit_trail_upgrades_with_its_journal(
    tmp_path: Path,
) -> None:
    """tests/fixtures/store_0006.sql: two runs, an assign of three items, a renewal and a
    revocation. Every row stays, and the per-user trail is made from the journal."""
    path = tmp_path / "r6.db"
    load_fixture(path, "store_0006.sql")
    before = row_counts(path)
    s = Store(f"sqlite:///{path}")
    assert s.upgrade() == ("0006", schema.head())
    after = row_counts(path)
    assert {t: n for t, n in after.items() if t in before} == before
    assert after["journal_item"] == 6
    trail = [(i.certificate_id, i.action, i.issued_on, i.outcome) for i in s.audit.for_user(501)]
    assert trail == [
        (12, "assign", date(2026, 6, 1), "ok"),
        (14, "assign", date(2026, 5, 1), "ok"),
        (12, "renew", None, "ok"),
        (12, "assign", date(2026, 11, 1), "ok"),
    ]
    assert [i.action for i in s.audit.for_user(502)] == ["assign", "revoke"]
    assert {i.run_kind for i in s.audit.for_user(502)} == {"full", "incremental"}
    assert differences(s.engine) == []
    s.close()


def test_the_trail_follows_each_write_and_pruning_never_touches_ownership(
    store: Store,
) -> None:
    run = store.journal.start_run("incremental")
    assign = AssignRequest(
        (AssignItem(12, 501, date(2026, 6, 1)), AssignItem(14, 501, date(2026, 5, 1)))
    )
    jid = store.journal.record_intent(run, 1, assign)
    assert [(i.certificate_id, i.outcome) for i in store.audit.for_user(501)] == [
        (12, None),
        (14, None),
    ]
    store.journal.record_outcome(jid, assign, "ok")
    revoke = ResetRequest(12, (501,), False, revoke_user_ids=(501,))
    store.journal.record_outcome(store.journal.record_intent(run, 2, revoke), revoke, "failed")
    store.journal.finish_run(run, outcome="partial", counts={}, requests={})
    assert [(i.action, i.outcome) for i in store.audit.for_user(501)] == [
        ("assign", "ok"),
        ("assign", "ok"),
        ("revoke", "failed"),
    ]
    open_run = store.journal.start_run("incremental")
    store.journal.record_intent(open_run, 1, revoke)  # still running: never pruned

    pruned = store.audit.prune(before=datetime.now(UTC) + timedelta(days=1))
    assert (pruned.journal_entries, pruned.items) == (2, 3)
    assert pruned.runs == 0  # the run an ownership row names is kept, without its journal
    assert set(store.holdings.owned_pairs()) == {(12, 501), (14, 501)}
    assert [i.run_id for i in store.audit.for_user(501)] == [open_run]
    assert {r.id for r in store.journal.recent_runs()} == {run, open_run}


def test_mappings_round_trip_and_import_twice_changes_nothing(store: Store, tmp_path: Path) -> None:
    """Types, users and policy come back as imported; a second import of the same file is a no-op."""
    mf = mapping_file(
        tmp_path,
        [TypeMapping("food-safety", 12, authoritative=True)],
        [UserMapping("nc-1", 501), UserMapping("nc-2", monotree_email="jo@example.com")],
        Policy(notify_on_revoke=True, max_revoke_min=3),
    )
    assert store.mappings.revision() == "" and not store.mappings.has_email()
    first = store.mappings.import_file(mf)
    assert store.mappings.has_email()
    assert (first.types_added, first.users_added, first.policy_changed) == (1, 2, True)
    revision = store.mappings.revision()
    assert revision and store.mappings.users_without_id() == [
        UserMapping("nc-2", None, "jo@example.com")
    ]
    assert store.mappings.types() == [TypeMapping("food-safety", 12, True)]
    assert store.mappings.users() == [
        UserMapping("nc-1", 501),
        UserMapping("nc-2", None, "jo@example.com"),
    ]
    assert store.mappings.policy() == Policy(notify_on_revoke=True, max_revoke_min=3)
    again = store.mappings.import_file(mf)
    assert not again.changed and again.unchanged == 3
    # Every import is a new revision: a quiet cycle's digest stands it for the mappings.
    assert store.mappings.revision() not in ("", revision)


def test_mappings_by_id_only_have_no_email_to_resolve(store: Store, tmp_path: Path) -> None:
    """Users mapped by Monotree id only: a cycle has no email to look up in Monotree's
    user list; one mapped by email added, it has."""
    only_ids = [UserMapping("nc-1", 501), UserMapping("nc-2", 502)]
    store.mappings.import_file(mapping_file(tmp_path, [TypeMapping("a", 1)], only_ids))
    assert not store.mappings.has_email() and store.mappings.users_without_id() == []
    by_email = UserMapping("nc-3", monotree_email="kim@example.com")
    store.mappings.import_file(mapping_file(tmp_path, [TypeMapping("a", 1)], [*only_ids, by_email]))
    assert store.mappings.has_email()


def test_import_upserts_and_prune_removes_and_counts(store: Store, tmp_path: Path) -> None:
    """Import updates changed rows; --prune removes what the file no longer names, and says how many."""
    store.mappings.import_file(
        mapping_file(tmp_path, [TypeMapping("a", 1), TypeMapping("b", 2)], [UserMapping("u", 5)])
    )
    keep = store.mappings.import_file(mapping_file(tmp_path, [TypeMapping("a", 3)], []))
    assert (keep.types_updated, keep.types_pruned) == (1, 0)
    assert [t.natecosmic for t in store.mappings.types()] == ["a", "b"]
    pruned = store.mappings.import_file(
        mapping_file(tmp_path, [TypeMapping("a", 3)], []), prune=True
    )
    assert (pruned.types_pruned, pruned.users_pruned) == (1, 1)
    assert store.mappings.types() == [TypeMapping("a", 3)]


def test_removed_and_repointed_mappings_are_remembered_until_named_again(
    store: Store, tmp_path: Path
) -> None:
    """What a removed mapping explained must stay unmanaged, so the store keeps it."""
    store.mappings.import_file(
        mapping_file(tmp_path, [TypeMapping("a", 1), TypeMapping("b", 2)], [UserMapping("u", 5)])
    )
    store.mappings.import_file(
        mapping_file(tmp_path, [TypeMapping("a", 9)], []), prune=True
    )  # b and u removed, a re-pointed from 1 to 9
    types, users = store.mappings.removed()
    assert types == [TypeMapping("a", 1), TypeMapping("b", 2)]
    assert users == [UserMapping("u", 5)]
    store.mappings.import_file(
        mapping_file(tmp_path, [TypeMapping("a", 1), TypeMapping("b", 2)], [UserMapping("u", 5)]),
        prune=True,
    )  # all named again as they were: nothing to remember, except a's move to 9
    assert store.mappings.removed() == ([TypeMapping("a", 9)], [])


def test_email_mappings_resolve_through_the_user_cache(store: Store, tmp_path: Path) -> None:
    """An email mapping resolves once Monotree's user list is cached; until then it is unresolved."""
    store.mappings.import_file(
        mapping_file(tmp_path, [], [UserMapping("nc-2", monotree_email="jo@example.com")])
    )
    mappings, unresolved = store.resolved_mappings()
    assert mappings.users == {} and [u.natecosmic for u in unresolved] == ["nc-2"]
    assert store.users.ids() is None
    store.users.replace([(77, "Jo@Example.com", "Jo")])
    mappings, unresolved = store.resolved_mappings()
    assert mappings.users == {"nc-2": 77} and unresolved == []
    assert store.users.ids() == {77}


def test_journal_ownership_and_known_holdings_round_trip(store: Store) -> None:
    """Intent writes the journal and ownership first; the outcome updates known holdings."""
    run = store.journal.start_run("full")
    assign = AssignRequest(
        (AssignItem(12, 501, date(2026, 6, 1)), AssignItem(14, 502, date(2026, 5, 1)))
    )
    jid = store.journal.record_intent(run, 1, assign)
    assert set(store.holdings.owned_pairs()) == {(12, 501), (14, 502)}
    assert [(j.action, j.outcome) for j in store.journal.entries(run)] == [("assign", None)]
    store.journal.record_outcome(jid, assign, "ok")
    known = store.holdings.known([12, 14])
    assert known[12][501] == Holding(12, 501, True, date(2026, 6, 1), None, expiry_known=False)

    revoke = ResetRequest(12, (501,), False, revoke_user_ids=(501,))
    jid2 = store.journal.record_intent(run, 2, revoke)
    store.journal.record_outcome(jid2, revoke, "ok")
    assert set(store.holdings.owned_pairs()) == {(14, 502)}
    assert store.holdings.known([12]) == {12: {}}
    store.journal.finish_run(
        run,
        outcome="converged",
        counts={"assign": 2},
        requests={"monotree POST 204": 2},
    )
    summary = store.journal.recent_runs(1)[0]
    assert (summary.outcome, summary.counts, summary.requests) == (
        "converged",
        {"assign": 2},
        {"monotree POST 204": 2},
    )
    assert [j.outcome for j in store.journal.entries(run)] == ["ok", "ok"]


def test_a_refused_assign_releases_its_ownership_and_marks_the_template_dirty(store: Store) -> None:
    """A definite refusal means nothing was issued: no ownership stays, the template is re-read."""
    run = store.journal.start_run("full")
    assign = AssignRequest((AssignItem(12, 501, date(2026, 6, 1)),))
    store.holdings.save_full_read(12, {})
    jid = store.journal.record_intent(run, 1, assign)
    store.journal.record_outcome(jid, assign, "failed", "422")
    assert set(store.holdings.owned_pairs()) == set()
    assert store.holdings.template_states()[12].dirty


def test_an_unknown_outcome_keeps_ownership(store: Store) -> None:
    """An assign whose outcome is unknown keeps its ownership: it may well have been issued."""
    run = store.journal.start_run("full")
    assign = AssignRequest((AssignItem(12, 501, date(2026, 6, 1)),))
    jid = store.journal.record_intent(run, 1, assign)
    store.journal.record_outcome(jid, assign, "unknown", "read timeout")
    assert set(store.holdings.owned_pairs()) == {(12, 501)}
    assert store.holdings.template_states()[12].dirty


def test_recover_closes_interrupted_runs_and_open_writes(store: Store) -> None:
    """A run a crash left open is closed; its unfinished write becomes unknown; its template dirty."""
    run = store.journal.start_run("full")
    store.holdings.save_full_read(12, {})
    store.journal.record_intent(run, 1, AssignRequest((AssignItem(12, 501, date(2026, 6, 1)),)))
    assert store.journal.recover() == (1, 1)
    assert store.journal.recent_runs(1)[0].outcome == "interrupted"
    assert store.journal.entries(run)[0].outcome == "unknown"
    assert store.holdings.template_states()[12].dirty
    assert set(store.holdings.owned_pairs()) == {(12, 501)}
    assert store.journal.recover() == (0, 0)


def test_full_read_replaces_known_holdings(store: Store) -> None:
    """A full read replaces what was known of that template, and marks it clean."""
    store.holdings.save_full_read(
        12, {501: Holding(12, 501, True, date(2026, 1, 1), date(2027, 1, 1))}
    )
    kept = {
        502: Holding(12, 502, True, date(2026, 2, 1), None),
        504: Holding(12, 504, True, date(2026, 3, 1), date(2027, 3, 1), expiry_known=False),
        505: Holding(12, 505, True),
    }
    store.holdings.save_full_read(12, {**kept, 503: Holding(12, 503, False)})
    # Every field back as it was written (the rows go straight to the driver).
    assert store.holdings.known([12])[12] == kept
    assert not store.holdings.template_states()[12].dirty


def test_upgrade_from_the_first_schema_keeps_the_data(tmp_path: Path) -> None:
    """A store written at schema 1 is upgraded at start; its mappings, runs and ownership survive."""
    path = tmp_path / "old.db"
    load_fixture(path, "store_v1.sql")
    s = Store(f"sqlite:///{path}")
    assert s.upgrade() == ("0001", schema.head())
    assert s.schema_revision() == schema.head()
    assert s.mappings.types() == [TypeMapping("food-safety", 12)]
    assert set(s.holdings.owned_pairs()) == {(12, 501)}
    run = s.journal.recent_runs(1)[0]
    assert (run.id, run.outcome, run.counts, run.requests) == (
        "run-v1",
        "converged",
        {"assign": 1},
        {},
    )


def test_a_newer_schema_is_refused_and_the_file_left_untouched(tmp_path: Path) -> None:
    """A file from a newer certsync is refused with a clear message; not one byte changes."""
    path = tmp_path / "future.db"
    Store(f"sqlite:///{path}").close()
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=DELETE")
    con.execute("UPDATE alembic_version SET version_num = '9999'")
    con.commit()
    con.close()
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(StoreError, match="newer certsync"):
        Store(f"sqlite:///{path}")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


@pytest.mark.parametrize(
    ("version", "says"), [(3, "newer certsync"), (0, "schema 0, which no certsync release wrote")]
)
def test_a_legacy_version_marker_certsync_never_wrote_is_refused(
    tmp_path: Path, version: int, says: str
) -> None:
    """Before Alembic the version sat in certsync_schema: 1 and 2 upgrade, 3 is from the
    future, 0 is damage; neither of the last two is touched."""
    path = tmp_path / "legacy.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE certsync_schema (id INTEGER PRIMARY KEY, version INTEGER)")
    con.execute("INSERT INTO certsync_schema VALUES (1, ?)", (version,))
    con.commit()
    con.close()
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(StoreError, match=says):
        Store(f"sqlite:///{path}")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_a_corrupted_file_is_refused_and_left_untouched(tmp_path: Path) -> None:
    """A file that is not a SQLite database is refused with a clear message and kept as it was."""
    path = tmp_path / "broken.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="left untouched"):
        Store(f"sqlite:///{path}")
    assert path.read_bytes() == b"this is not a database" * 100


def test_a_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    """A database URL in a folder that does not exist says so."""
    with pytest.raises(StoreError, match="does not exist"):
        Store(f"sqlite:///{tmp_path / 'nope' / 'x.db'}")


HOLDER = textwrap.dedent(
    """
    import sys, time
    from certsync.store import Store
    s = Store(sys.argv[1])
    with s.lock.held(timeout=5):
        print("locked", flush=True)
        time.sleep(float(sys.argv[2]))
    print("released", flush=True)
    """
)


def test_two_processes_contend_for_the_writer_lock(store_url: str) -> None:
    """While one process holds the lock, another waits up to its bound, then fails clearly."""
    url = store_url
    Store(url).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, url, "3"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        contender = Store(url)
        started = time.monotonic()
        with (
            pytest.raises(LockBusyError, match=rf"certsync pid {holder.pid}"),
            contender.lock.held(timeout=0.5),
        ):
            pass
        assert time.monotonic() - started >= 0.5
        # With a longer bound the second one gets the lock once the first lets go.
        with contender.lock.held(timeout=10):
            assert holder.wait(timeout=10) == 0
    finally:
        holder.kill()


def test_a_lock_left_by_a_killed_process_is_taken_over(store_url: str) -> None:
    """A holder killed with SIGKILL leaves its row behind; the next process takes it over safely."""
    url = store_url
    Store(url).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, url, "60"], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    holder.kill()
    holder.wait()
    s = Store(url)
    with s.lock.held(timeout=2), s.engine.connect() as conn:
        row = conn.exec_driver_sql("SELECT pid, epoch FROM writer_lock WHERE id = 1").one()
    s.close()
    assert row.pid == os.getpid() and row.epoch == 2  # a new holder: a new fencing epoch


def test_db_upgrade_is_the_command_that_moves_an_older_store(tmp_path: Path) -> None:
    """Read commands refuse an older store with the fix; `certsync db upgrade` applies it."""
    path = tmp_path / "v1.db"
    load_fixture(path, "store_v1.sql")
    env = {**clean_env(), "CERTSYNC_DATABASE_URL": f"sqlite:///{path}"}

    def certsync(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CERTSYNC, *args], env=env, cwd=tmp_path, capture_output=True, text=True, check=False
        )

    refused = certsync("status")
    assert refused.returncode == 2 and "run `certsync db upgrade`" in refused.stderr
    done = certsync("db", "upgrade")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"upgraded the store from 0001 to {schema.head()}\n"
    again = certsync("db", "upgrade")
    assert again.stdout == f"the store is at the latest schema ({schema.head()})\n"
    assert "run-v1" in certsync("status").stdout


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://certsync:s3cr3t-pw@/certsync?host=/nonexistent-socket-dir",
        "postgres://certsync:s3cr3t-pw@/certsync?host=/nonexistent-socket-dir",
        "mysql://certsync:s3cr3t-pw@db/certsync",
        "certsync:s3cr3t-pw@db/certsync",
    ],
)
def test_a_database_url_with_a_password_is_never_echoed(url: str) -> None:
    """A server out of reach, a kind certsync does not use, or no URL at all: the error
    names the setting, never the password."""
    with pytest.raises(StoreError) as caught:
        Store(url).close()
    message = str(caught.value)
    assert "s3cr3t-pw" not in message and message.startswith(("the store", "cannot use"))


def test_postgres_urls_need_no_driver_name(postgres: Postgres) -> None:
    """`postgresql://` as a provider gives it is read as psycopg 3, the driver certsync ships."""
    url = postgres.new_database().replace("postgresql+psycopg://", "postgresql://")
    s = Store(url)
    assert s.schema_revision() == schema.head() and "postgresql+psycopg" in s.shown
    s.close()


def test_a_full_read_says_whether_the_count_matched_and_what_is_held(store: Store) -> None:
    """What drift detection reads: the calibration of each template, kept across a
    `mark_dirty`, and what certsync knows it holds grouped by what decides expiry."""
    held = {
        u: Holding(7, u, True, date(2026, 1, 1), date(2027, 1, 1) if u < 3 else None)
        for u in range(1, 5)
    }
    held[9] = Holding(7, 9, False, date(2025, 1, 1), date(2025, 6, 1))  # expired: not kept
    store.holdings.save_full_read(7, held, listed_count=4)
    store.holdings.save_full_read(8, {}, listed_count=1)
    store.holdings.save_full_read(6, {})
    with store.engine.begin() as conn:
        mark_dirty(conn, [7])
    states = store.holdings.template_states()
    assert [states[c].count_matches for c in (6, 7, 8)] == [None, True, False]
    assert states[7].dirty and not states[8].dirty
    assert set(store.holdings.count_basis([7, 8])[7]) == {
        (True, date(2027, 1, 1), date(2026, 1, 1), 2),
        (True, None, date(2026, 1, 1), 2),
    }
    assert store.holdings.count_basis([8]) == {8: []}
