"""Store faults: locked by another process, corrupted, read-only, full. Clear messages, nothing half-written."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from certsync.errors import StoreError
from certsync.mappings_file import MappingFile
from certsync.models import Policy, UserMapping
from certsync.sandbox import SandboxState, World, generate
from certsync.store import Store
from tests.conftest import Cli
from tests.test_e2e import sync
from tests.test_store import HOLDER

pytestmark = pytest.mark.e2e


@pytest.fixture
def world(sandbox_state: SandboxState, cli: Cli) -> World:
    w = generate(sandbox_state, users=10, types=2, seed=2, today=date.today(), inactive_share=0.0)
    (cli.cwd / "mappings.toml").write_text(w.mapping_toml)
    return w


def test_a_store_locked_by_another_process(
    cli: Cli, sandbox_state: SandboxState, world: World
) -> None:
    """Another process holds the writer lock: sync waits its bound, names the holder, exits 1, writes nothing."""
    url = cli.env["CERTSYNC_DATABASE_URL"]
    Store(url).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, url, "30"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        result = cli("sync", CERTSYNC_SYNC__LOCK_TIMEOUT="1")
        assert result.returncode == 1
        assert f"is locked by certsync pid {holder.pid}" in result.stderr
        assert "waited 1s" in result.stderr and "Traceback" not in result.stderr
        assert sandbox_state.count("monotree") == 0
    finally:
        holder.kill()
        holder.wait()


def test_a_corrupted_database(cli: Cli, world: World) -> None:
    """A damaged file is detected at start: exit 2, a clear message, the file left byte for byte."""
    sync(cli)
    path = cli.cwd / "certsync.db"
    # A sync that ended well sealed the file; the damage below, written since, voids it.
    assert (cli.cwd / "certsync.db.sealed").exists()
    con = sqlite3.connect(path)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    data = bytearray(path.read_bytes())
    data[4096:8192] = b"\xff" * 4096  # overwrite the second page
    path.write_bytes(bytes(data))
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    result = cli("sync")
    assert result.returncode == 2
    assert "corrupted" in result.stderr and "left untouched" in result.stderr
    assert "Traceback" not in result.stderr
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_a_read_only_database(cli: Cli, sandbox_state: SandboxState, world: World) -> None:
    """A store that cannot be written: exit 2 with the reason, and no request is sent to Monotree."""
    sync(cli)
    writes = sandbox_state.count("monotree", "POST")
    with sandbox_state.lock:
        sandbox_state.records[0] = {**sandbox_state.records[0], "lifecycle_status": "revoked"}
    path = cli.cwd / "certsync.db"
    result = cli(
        "sync", "--format", "json", CERTSYNC_DATABASE_URL=f"sqlite:///file:{path}?mode=ro&uri=true"
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "readonly database" in result.stderr
    assert "Traceback" not in result.stderr
    assert sandbox_state.count("monotree", "POST") == writes


def test_a_full_disk_writes_nothing_half(tmp_path: Path) -> None:
    """When the database cannot grow, the import fails as a whole with a clear StoreError."""
    store = Store(f"sqlite:///{tmp_path / 'full.db'}")

    def tiny(dbapi_conn: Any, _: Any) -> None:
        dbapi_conn.execute("PRAGMA max_page_count = 12")

    event.listen(store.engine, "connect", tiny)
    store.engine.dispose()
    big = MappingFile(
        tmp_path / "m.toml",
        Policy(),
        (),
        tuple(UserMapping(f"nc-{i:06d}-{'x' * 40}", i + 1) for i in range(20_000)),
    )
    with pytest.raises(StoreError, match="full"):
        store.mappings.import_file(big)
    assert store.mappings.users() == []


def test_the_database_file_is_owner_only_after_a_sync(cli: Cli, world: World) -> None:
    """The SQLite file and its WAL companions are readable by their owner only."""
    sync(cli)
    for name in ("certsync.db", "certsync.db-wal"):
        path = cli.cwd / name
        if path.exists():
            assert path.stat().st_mode & 0o077 == 0, name
    doc = json.loads(cli("status", "--format", "json").stdout)
    assert doc[0]["outcome"] == "converged"
