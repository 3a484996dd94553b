"""The SQLite file's check before it is opened: in full unless certsync closed the file
cleanly and nothing has written to it since (its seal)."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from certsync.errors import StoreError
from certsync.store import Store, sqlite_file


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The files checked in full, in order."""
    checked: list[Path] = []
    real = sqlite_file._check_integrity

    def counting(conn: sqlite3.Connection, path: Path) -> None:
        checked.append(path)
        real(conn, path)

    monkeypatch.setattr(sqlite_file, "_check_integrity", counting)
    return checked


def _closed_store(path: Path) -> None:
    store = Store(f"sqlite:///{path}")
    store.values.set("written", "yes")
    store.close()


def test_a_file_closed_cleanly_is_not_checked_again(tmp_path: Path, checks: list[Path]) -> None:
    """A one-shot command reopens the file the last one closed, untouched: the check that
    reads every page is not run again; the seal beside it is readable by its owner only."""
    path = tmp_path / "certsync.db"
    _closed_store(path)  # made new: nothing to check
    _closed_store(path)
    Store(f"sqlite:///{path}").close()
    assert checks == []
    seal = tmp_path / "certsync.db.sealed"
    assert stat.S_IMODE(seal.stat().st_mode) == 0o600
    seal.unlink()  # as after a crash: the next command checks every page
    _closed_store(path)
    assert checks == [path]
    _closed_store(path)
    assert checks == [path]


def test_a_file_written_by_another_program_is_checked_in_full(
    tmp_path: Path, checks: list[Path]
) -> None:
    path = tmp_path / "certsync.db"
    _closed_store(path)
    _closed_store(path)
    checks.clear()
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE someone_elses (x)")
    conn.close()
    Store(f"sqlite:///{path}").close()
    assert checks == [path]


def test_a_sealed_file_damaged_afterwards_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "certsync.db"
    _closed_store(path)
    assert sqlite_file.is_sealed(path)
    data = bytearray(path.read_bytes())
    data[4096:8192] = b"\xff" * 4096  # the second page, as a broken disk or copy would
    path.write_bytes(bytes(data))
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(StoreError, match="corrupted"):
        Store(f"sqlite:///{path}")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_the_modification_time_set_back_does_not_fool_the_seal(tmp_path: Path) -> None:
    """A copy that keeps the old times (`cp -p`, `touch -r`) still changes the change time."""
    path = tmp_path / "certsync.db"
    _closed_store(path)
    kept = path.stat()
    path.write_bytes(path.read_bytes())
    os.utime(path, ns=(kept.st_atime_ns, kept.st_mtime_ns))
    assert path.stat().st_mtime_ns == kept.st_mtime_ns
    assert not sqlite_file.is_sealed(path)


@pytest.mark.parametrize("beside", ["-wal", "-journal"])
def test_a_log_waiting_beside_the_file_makes_it_checked(tmp_path: Path, beside: str) -> None:
    """A write-ahead log or rollback journal with content: a write was cut short, or
    another process has the file open; SQLite will replay it, so the file is checked."""
    path = tmp_path / "certsync.db"
    _closed_store(path)
    assert sqlite_file.is_sealed(path)
    (tmp_path / f"certsync.db{beside}").write_bytes(b"\0" * 32)
    assert not sqlite_file.is_sealed(path)
    sqlite_file.seal(path)  # nor is it sealed while one waits
    (tmp_path / f"certsync.db{beside}").unlink()
    assert sqlite_file.is_sealed(path)  # the earlier seal, still true of the file


@pytest.mark.parametrize("content", ["", "not json", '{"format": 1}', "[]"])
def test_a_damaged_or_foreign_seal_is_not_trusted(
    tmp_path: Path, checks: list[Path], content: str
) -> None:
    path = tmp_path / "certsync.db"
    _closed_store(path)
    checks.clear()
    (tmp_path / "certsync.db.sealed").write_text(content)
    Store(f"sqlite:///{path}").close()
    assert checks == [path]


def test_a_seal_that_cannot_be_written_costs_only_the_next_check(
    tmp_path: Path, checks: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "certsync.db"

    def refused(*_args: object, **_kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    with monkeypatch.context() as patched:
        patched.setattr(os, "replace", refused)
        _closed_store(path)
    assert not (tmp_path / "certsync.db.sealed").exists()
    assert not (tmp_path / "certsync.db.sealed.tmp").exists()
    _closed_store(path)
    assert checks == [path]


def test_a_command_that_met_a_database_error_leaves_no_seal(
    tmp_path: Path, checks: list[Path]
) -> None:
    """A damaged page found mid-run leaves the file as it was: without this, its old seal
    would still match it and the next command would skip the check again."""
    path = tmp_path / "certsync.db"
    _closed_store(path)
    assert sqlite_file.is_sealed(path)
    store = Store(f"sqlite:///{path}")
    with pytest.raises(OperationalError), store.engine.connect() as conn:
        conn.execute(text("SELECT * FROM no_such_table"))
    store.close()
    assert not (tmp_path / "certsync.db.sealed").exists()
    _closed_store(path)
    assert checks == [path]


def test_a_link_to_the_database_is_sealed_as_the_file_it_points_to(tmp_path: Path) -> None:
    """SQLite keeps its log beside the file a link points to: that is where it is looked for."""
    (tmp_path / "data").mkdir()
    real = tmp_path / "data" / "certsync.db"
    _closed_store(real)
    link = tmp_path / "certsync.db"
    link.symlink_to(real)
    assert sqlite_file.is_sealed(link)
    (tmp_path / "data" / "certsync.db-wal").write_bytes(b"\0" * 32)
    assert not sqlite_file.is_sealed(link)
