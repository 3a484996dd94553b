"""certsync on PostgreSQL, end to end: the same requests as on SQLite, and a database
password that never shows."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest

from certsync.sandbox import Sandbox, SandboxState, generate
from tests.conftest import Cli
from tests.postgres import Postgres

pytestmark = pytest.mark.e2e
PASSWORD = "pg-password-that-must-not-show-7c1f"


def two_syncs(cli: Cli, state: SandboxState) -> list[dict[str, Any]]:
    """A first (full) sync, then one after a record is revoked upstream: their requests."""
    docs = []
    for _ in range(2):
        result = cli("sync", "--format", "json")
        assert result.returncode == 0, result.stderr[-2000:]
        docs.append(json.loads(result.stdout))
        with state.lock:
            state.records[0] = {**state.records[0], "lifecycle_status": "revoked"}
    return docs


def test_a_sync_on_postgresql_sends_the_same_requests_as_on_sqlite(
    cli: Cli, postgres: Postgres
) -> None:
    counts = []
    for url in (f"sqlite:///{cli.cwd / 'same.db'}", postgres.new_database()):
        state = SandboxState(rate_limit=None)
        world = generate(state, users=30, types=3, seed=9, today=date.today())
        (cli.cwd / "mappings.toml").write_text(world.mapping_toml)
        with Sandbox(state) as sandbox:
            docs = two_syncs(cli.using({**sandbox.env(), "CERTSYNC_DATABASE_URL": url}), state)
        counts.append([(d["requests"], d["counts"]) for d in docs])
    assert counts[0] == counts[1]
    assert counts[0][1][1]["revoke"] == 1  # the second sync did work, and the same


def test_a_database_password_never_shows(cli: Cli, postgres: Postgres) -> None:
    """In the URL or in CERTSYNC_DATABASE_PASSWORD_FILE, at debug level, in every command's
    output: never. (The test server trusts local connections, so any password works.)"""
    (cli.cwd / "mappings.toml").write_text('[[types]]\nnatecosmic = "x"\nmonotree = 1\n')
    url = postgres.new_database()
    in_url = url.replace("postgresql+psycopg://postgres@", f"postgresql://postgres:{PASSWORD}@")
    secret = cli.cwd / "pg_password"
    secret.write_text(PASSWORD + "\n")
    outputs = []
    for env, commands in (
        ({"CERTSYNC_DATABASE_URL": in_url}, [("sync",), ("status",)]),
        (
            {"CERTSYNC_DATABASE_URL": url, "CERTSYNC_DATABASE_PASSWORD_FILE": str(secret)},
            [("plan",), ("db", "upgrade")],
        ),
    ):
        run = cli.using({**env, "CERTSYNC_LOG_LEVEL": "debug"})
        for args in commands:
            result = run(*args)
            outputs.append(result.stdout + result.stderr)
    assert all(PASSWORD not in o for o in outputs)
    assert any("db upgrade" in o or "latest schema" in o for o in outputs)


def test_an_unreadable_password_file_names_the_setting(cli: Cli, postgres: Postgres) -> None:
    result = cli(
        "status",
        CERTSYNC_DATABASE_URL=postgres.new_database(),
        CERTSYNC_DATABASE_PASSWORD_FILE=str(cli.cwd / "missing"),
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "CERTSYNC_DATABASE_PASSWORD_FILE: cannot read" in result.stderr


def test_on_postgresql_an_unchanged_pull_is_a_304_and_decides_nothing(
    cli: Cli, postgres: Postgres
) -> None:
    """The kept snapshot is known as the one this release wrote (its time and count, as
    PostgreSQL gives them back), so Natecosmic is asked with its validators."""
    state = SandboxState(rate_limit=None)
    world = generate(state, users=20, types=2, seed=4, today=date.today())
    (cli.cwd / "mappings.toml").write_text(world.mapping_toml)
    with Sandbox(state) as sandbox:
        on_pg = cli.using({**sandbox.env(), "CERTSYNC_DATABASE_URL": postgres.new_database()})
        docs = []
        for _ in range(3):
            result = on_pg("sync", "--format", "json")
            assert result.returncode == 0, result.stderr[-2000:]
            docs.append(json.loads(result.stdout))
    assert docs[2]["unchanged_since"] == docs[1]["run_id"]
    assert state.statuses["natecosmic 304"] == 2
