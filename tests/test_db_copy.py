"""`certsync db copy`: from SQLite to PostgreSQL without losing a row, then a sync there
that has nothing to do."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import create_engine, select

from certsync.sandbox import SandboxState, generate
from certsync.store.copy import tables
from tests.conftest import Cli
from tests.postgres import Postgres

pytestmark = pytest.mark.e2e


def _plain(value: Any) -> Any:
    """Values as both engines give them back: SQLite's naive UTC, PostgreSQL's aware."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    return value


def _contents(url: str) -> dict[str, list[tuple[Any, ...]]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {
                t.name: sorted(
                    (tuple(_plain(v) for v in row) for row in conn.execute(select(t))), key=repr
                )
                for t in tables()
            }
    finally:
        engine.dispose()


def test_a_store_copied_to_postgresql_keeps_every_row_and_a_sync_there_writes_nothing(
    cli: Cli, sandbox_state: SandboxState, postgres: Postgres
) -> None:
    world = generate(sandbox_state, users=30, types=3, seed=5, today=date.today())
    (cli.cwd / "mappings.toml").write_text(world.mapping_toml)
    assert cli("sync").returncode == 0
    with sandbox_state.lock:  # one owned holding revoked: the journal holds a reset too
        sandbox_state.records[0] = {**sandbox_state.records[0], "lifecycle_status": "revoked"}
    assert cli("sync").returncode == 0
    sqlite_url = cli.env["CERTSYNC_DATABASE_URL"]
    target = postgres.new_database()

    copied = cli("db", "copy", "--to", target)
    assert copied.returncode == 0, copied.stderr[-2000:]
    assert "point CERTSYNC_DATABASE_URL at it" in copied.stdout
    before, after = _contents(sqlite_url), _contents(target)
    assert after == before
    assert len(after["ownership"]) > 50 and len(after["journal"]) >= 2
    assert after["type_mapping"] and after["user_mapping"] and after["run"]

    there = cli("sync", "--format", "json", CERTSYNC_DATABASE_URL=target)
    assert there.returncode == 0, there.stderr[-2000:]
    doc = json.loads(there.stdout)
    assert doc["write_requests"] == [] and doc["outcome"] == "converged"

    again = cli("db", "copy", "--to", target)
    assert again.returncode == 2 and "already holds data" in again.stderr
    assert "Traceback" not in again.stderr
