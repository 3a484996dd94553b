"""Where the store's schema stands, and bringing it to Alembic's head.

A store written before Alembic carries its version in `certsync_schema`
(1 or 2): it is stamped at the matching revision, then upgraded like any
other. A store from a newer certsync (a revision this one does not know, or a
legacy version above 2) is refused and left untouched.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

from certsync.errors import StoreError

_SCRIPTS = Path(__file__).parent / "migrations"
# The first releases' own version numbers, and the revisions that describe them.
_LEGACY = {1: "0001", 2: "0002"}


def _config(conn: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    config.attributes["connection"] = conn
    return config


LEGACY_MAX = max(_LEGACY)
LEGACY_VERSIONS = frozenset(_LEGACY)


def known_revisions() -> frozenset[str]:
    return frozenset(s.revision for s in ScriptDirectory(str(_SCRIPTS)).walk_revisions())


def head() -> str:
    heads = ScriptDirectory(str(_SCRIPTS)).get_heads()
    assert len(heads) == 1, f"the migrations have {len(heads)} heads"
    return heads[0]


def _legacy_version(conn: Connection) -> int | None:
    if not inspect(conn).has_table("certsync_schema"):
        return None
    version = conn.execute(text("SELECT version FROM certsync_schema WHERE id = 1")).scalar()
    return int(version or 0)


def revision(conn: Connection) -> str | None:
    """The store's revision: Alembic's, else the legacy version's, else None (empty)."""
    current = MigrationContext.configure(conn).get_current_revision()
    if current is not None:
        return current
    legacy = _legacy_version(conn)
    if legacy is None:
        return None
    if legacy > LEGACY_MAX:
        raise StoreError(
            f"the database was written by a newer certsync (schema {legacy}); it was left "
            "untouched: upgrade certsync"
        )
    if legacy not in _LEGACY:
        raise StoreError(
            f"the database says certsync schema {legacy}, which no certsync release wrote; "
            "it was left untouched: restore the store from a backup"
        )
    return _LEGACY[legacy]


def is_current(conn: Connection) -> bool:
    return revision(conn) == head()


@contextmanager
def migrating(engine: Engine) -> Iterator[Connection]:
    """One transaction for a migration.

    SQLite alters a table by copying it, and dropping the old `run` table would
    break the journal's references to it. So SQLite's foreign keys are switched
    off for the copy (only possible outside a transaction) and every reference
    is checked before the migration commits.
    """
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            conn.exec_driver_sql("PRAGMA foreign_keys = OFF")
            conn.commit()
        try:
            with conn.begin():
                yield conn
                if sqlite and conn.exec_driver_sql("PRAGMA foreign_key_check").first():
                    raise StoreError("a migration left a reference without its row")
        finally:
            if sqlite:
                conn.exec_driver_sql("PRAGMA foreign_keys = ON")
                conn.commit()


def upgrade(conn: Connection) -> tuple[str | None, str]:
    """Bring the store to head in the caller's transaction; (from, to) revisions."""
    start = revision(conn)
    if start is not None and start not in known_revisions():
        raise StoreError(
            f"the database was written by a newer certsync (revision {start}; this one knows "
            f"up to {head()}); it was left untouched: upgrade certsync"
        )
    config = _config(conn)
    if start is not None and MigrationContext.configure(conn).get_current_revision() is None:
        command.stamp(config, start)
    command.upgrade(config, "head")
    return start, head()
