"""Where the store's schema stands, and bringing it to Alembic's head.

A store written before Alembic carries its version in `certsync_schema`
(1 or 2): it is stamped at the matching revision, then upgraded like any
other. A store from a newer certsync (a revision this one does not know, or a
legacy version above 2) is refused and left untouched.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, inspect, text

from certsync.errors import StoreError

if TYPE_CHECKING:
    from alembic.config import Config

_SCRIPTS = Path(__file__).parent / "migrations"
# The first releases' own version numbers, and the revisions that describe them.
_LEGACY = {1: "0001", 2: "0002"}


def _config(conn: Connection) -> Config:
    from alembic.config import Config  # noqa: PLC0415 - Alembic loads only to migrate (see below)

    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    config.attributes["connection"] = conn
    return config


LEGACY_MAX = max(_LEGACY)
LEGACY_VERSIONS = frozenset(_LEGACY)


# Revision ids are the migration files' numbers (v0006_... is 0006), so every
# command can tell where the store stands without loading Alembic, which costs
# about a third of a command's start-up; a test holds this equal to Alembic's view.
_REVISION_FILE = re.compile(r"^v(\d{4})_\w+\.py$")


@functools.cache
def known_revisions() -> frozenset[str]:
    return frozenset(
        m.group(1) for p in (_SCRIPTS / "versions").iterdir() if (m := _REVISION_FILE.match(p.name))
    )


def head() -> str:
    return max(known_revisions())


def _alembic_revision(conn: Connection) -> str | None:
    if not inspect(conn).has_table("alembic_version"):
        return None
    found = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return None if found is None else str(found)


def _legacy_version(conn: Connection) -> int | None:
    if not inspect(conn).has_table("certsync_schema"):
        return None
    version = conn.execute(text("SELECT version FROM certsync_schema WHERE id = 1")).scalar()
    return int(version or 0)


def revision(conn: Connection) -> str | None:
    """The store's revision: Alembic's, else the legacy version's, else None (empty)."""
    current = _alembic_revision(conn)
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
    from alembic import command  # noqa: PLC0415 - only a migration needs Alembic

    config = _config(conn)
    if start is not None and _alembic_revision(conn) is None:
        command.stamp(config, start)
    command.upgrade(config, "head")
    return start, head()
