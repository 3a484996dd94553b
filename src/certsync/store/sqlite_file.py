"""What certsync checks of an SQLite file before it opens it, and the seal it leaves
when it closes one cleanly.

An existing file is read read-only first: a file SQLite finds corrupted, or one a
newer (or unknown) certsync wrote, is refused and left byte for byte. The full
integrity check reads every page: 0.17 s of CPU for a 45 MB store (100,000
records), paid by every one-shot command. So a clean close leaves a seal beside the
file (`<file>.sealed`: its device, inode, size, and modification and change times
to the nanosecond), and the check is skipped for a file whose seal still matches:
one nobody has written to since certsync closed it, with no write-ahead log or
rollback journal waiting beside it. Any write changes the change time, which no
tool can set back (`touch` sets the modification time only), so a file written by
another program, copied or restored over it, or left by a crashed run is checked in
full; SQLite still checks each page it reads. What a seal cannot see is a disk
changing a block under an unchanged file: SQLite reports such a page when a command
reads it, as every database error is reported (`StoreError`), and a command that met
any database error leaves no seal, so the next one checks the file in full. Sealed on
POSIX systems only, and trusted only where the file's times are finer than a
millisecond.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import tempfile
from pathlib import Path

from certsync.errors import StoreError
from certsync.store import schema

_SEAL_FORMAT = 1
# Beside the database: SQLite writes its write-ahead log and rollback journal there.
_BESIDE = ("-wal", "-journal")


def preflight(path: Path) -> None:
    """Check an existing file read-only before anything may alter it; create a new one 0600."""
    if not path.exists():
        _create(path)
        return
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open the database {path}: {exc}") from None
    try:
        if not is_sealed(path):
            _check_integrity(conn, path)
        _check_schema(conn, path)
    except sqlite3.DatabaseError as exc:
        raise StoreError(
            f"the database {path} is not a certsync database or is corrupted ({exc}); "
            "it was left untouched"
        ) from None
    finally:
        conn.close()


def seal(path: Path) -> None:
    """Note that certsync closed this file cleanly, as it is now (every connection of
    this process closed first, and no database error seen: see `unseal`). Not sealed
    while a log or journal waits beside it: then another process still has it open,
    or a write was cut short. A seal that cannot be written costs the next command a
    full check, nothing else."""
    if os.name != "posix":
        return  # elsewhere the change time may be the creation time
    path = path.resolve()  # SQLite keeps its log beside the file a link points to
    try:
        if _pending(path):
            return
        facts = _facts(path)
        if _pending(path):
            return  # written to while it was looked at
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.sealed.")
    except OSError:
        return
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:  # mkstemp makes it 0600
            json.dump(facts, out)
        os.replace(temporary, _seal_of(path))
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(temporary)


def unseal(path: Path) -> None:
    """Take the seal away: the next command checks every page. After a database error
    (a page SQLite found damaged, an I/O error), which a file unchanged since would
    otherwise not be checked for again."""
    with contextlib.suppress(OSError):
        _seal_of(path.resolve()).unlink(missing_ok=True)


def is_sealed(path: Path) -> bool:
    """True when the file is as certsync left it at its last clean close."""
    if os.name != "posix":
        return False
    path = path.resolve()
    try:
        kept = json.loads(_seal_of(path).read_text(encoding="utf-8"))
        facts = _facts(path)
    except (OSError, ValueError):
        return False
    # Times kept to the second only (some network and older file systems) could not
    # tell a write made in the second of the close: such a file is always checked.
    coarse = facts["changed_ns"] % 1_000_000 == 0
    return not coarse and not _pending(path) and kept == facts


def _seal_of(path: Path) -> Path:
    return path.with_name(f"{path.name}.sealed")


def _facts(path: Path) -> dict[str, int]:
    stat = path.stat()
    return {
        "format": _SEAL_FORMAT,
        "device": stat.st_dev,
        "inode": stat.st_ino,
        "size": stat.st_size,
        "modified_ns": stat.st_mtime_ns,
        "changed_ns": stat.st_ctime_ns,
    }


def _pending(path: Path) -> bool:
    for suffix in _BESIDE:
        try:
            if path.with_name(path.name + suffix).stat().st_size > 0:
                return True
        except FileNotFoundError:
            continue
    return False


def _create(path: Path) -> None:
    if not path.parent.is_dir():
        raise StoreError(f"database folder {path.parent} does not exist")
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        raise StoreError(f"cannot create the database {path}: {exc.strerror}") from None
    os.close(fd)


def _check_integrity(conn: sqlite3.Connection, path: Path) -> None:
    check = conn.execute("PRAGMA quick_check").fetchone()
    if check is None or check[0] != "ok":
        detail = check[0] if check else "?"
        raise StoreError(
            f"the database {path} is corrupted (integrity check: {detail}); "
            "it was left untouched: restore a backup or move it aside"
        )


def _check_schema(conn: sqlite3.Connection, path: Path) -> None:
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    newer = None
    if "alembic_version" in tables:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        if row and row[0] not in schema.known_revisions():
            newer = f"revision {row[0]}"
    elif "certsync_schema" in tables:
        row = conn.execute("SELECT version FROM certsync_schema WHERE id = 1").fetchone()
        version = int(row[0]) if row else 0
        if version > schema.LEGACY_MAX:
            newer = f"schema {version}"
        elif version not in schema.LEGACY_VERSIONS:
            raise StoreError(
                f"the database {path} says certsync schema {version}, which no certsync "
                "release wrote; it was left untouched: restore the store from a backup"
            )
    if newer is not None:
        raise StoreError(
            f"the database {path} was written by a newer certsync ({newer}; this one "
            f"knows up to {schema.head()}); it was left untouched: upgrade certsync"
        )
