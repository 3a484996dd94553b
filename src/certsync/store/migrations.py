"""The store's schema, as a small ordered list of migrations.

Why not Alembic: certsync owns a dozen tables, ships as one process, and must
upgrade a user's file at start with no extra command. An ordered list of DDL
steps, each run once inside a transaction with the version bump, does that in
forty lines and is easy to read in a review. The DDL sticks to types that SQLite
and PostgreSQL both accept, so a PostgreSQL URL works without code changes.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, text

MIGRATIONS: Sequence[Sequence[str]] = (
    # 1: the first release.
    (
        "CREATE TABLE certsync_schema (id INTEGER PRIMARY KEY, version INTEGER NOT NULL)",
        """CREATE TABLE type_mapping (
            natecosmic TEXT PRIMARY KEY,
            monotree INTEGER NOT NULL,
            authoritative BOOLEAN NOT NULL DEFAULT FALSE)""",
        """CREATE TABLE user_mapping (
            natecosmic TEXT PRIMARY KEY,
            monotree INTEGER,
            monotree_email TEXT)""",
        "CREATE TABLE setting (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        """CREATE TABLE monotree_user (
            id INTEGER PRIMARY KEY,
            email TEXT,
            name TEXT,
            seen_at TIMESTAMP NOT NULL)""",
        "CREATE INDEX ix_monotree_user_email ON monotree_user (email)",
        """CREATE TABLE ownership (
            certificate_id INTEGER NOT NULL,
            user_id INTEGER NOT NULL,
            issued_on DATE NOT NULL,
            run_id TEXT NOT NULL,
            journal_id TEXT NOT NULL,
            PRIMARY KEY (certificate_id, user_id))""",
        """CREATE TABLE known_holding (
            certificate_id INTEGER NOT NULL,
            user_id INTEGER NOT NULL,
            active BOOLEAN NOT NULL,
            issued_on DATE,
            expires_on DATE,
            expiry_known BOOLEAN NOT NULL DEFAULT TRUE,
            PRIMARY KEY (certificate_id, user_id))""",
        """CREATE TABLE template_state (
            certificate_id INTEGER PRIMARY KEY,
            read_at TIMESTAMP,
            dirty BOOLEAN NOT NULL DEFAULT TRUE)""",
        """CREATE TABLE run (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            started_at TIMESTAMP NOT NULL,
            ended_at TIMESTAMP,
            outcome TEXT,
            exit_code INTEGER,
            counts TEXT NOT NULL DEFAULT '{}',
            error TEXT)""",
        """CREATE TABLE journal (
            id TEXT PRIMARY KEY,
            run_id TEXT NOT NULL REFERENCES run (id),
            seq INTEGER NOT NULL,
            action TEXT NOT NULL,
            certificate_ids TEXT NOT NULL,
            payload TEXT NOT NULL,
            intent_at TIMESTAMP NOT NULL,
            outcome TEXT,
            outcome_at TIMESTAMP,
            error TEXT)""",
        "CREATE INDEX ix_journal_run_id ON journal (run_id)",
        """CREATE TABLE pull_snapshot (
            id INTEGER PRIMARY KEY,
            pulled_at TIMESTAMP NOT NULL,
            record_count INTEGER NOT NULL,
            digest TEXT NOT NULL,
            body TEXT NOT NULL)""",
        """CREATE TABLE writer_lock (
            id INTEGER PRIMARY KEY,
            owner TEXT NOT NULL,
            pid INTEGER NOT NULL,
            host TEXT NOT NULL,
            acquired_at TIMESTAMP NOT NULL,
            heartbeat_at TIMESTAMP NOT NULL)""",
    ),
    # 2: each run remembers the requests it made, per API, method and status.
    ("ALTER TABLE run ADD COLUMN requests TEXT NOT NULL DEFAULT '{}'",),
)

LATEST = len(MIGRATIONS)


def current_version(conn: Connection) -> int:
    """0 for an empty database."""
    has_table = conn.execute(
        text(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = 'certsync_schema'"
            if conn.dialect.name != "sqlite"
            else "SELECT COUNT(*) FROM sqlite_master WHERE type='table' AND name='certsync_schema'"
        )
    ).scalar_one()
    if not has_table:
        return 0
    version = conn.execute(text("SELECT version FROM certsync_schema WHERE id = 1")).scalar()
    return int(version or 0)


def upgrade(conn: Connection, from_version: int) -> int:
    """Run every migration after `from_version`; the caller owns the transaction."""
    for number in range(from_version + 1, LATEST + 1):
        for statement in MIGRATIONS[number - 1]:
            conn.execute(text(statement))
        if number == 1:
            conn.execute(text("INSERT INTO certsync_schema (id, version) VALUES (1, 1)"))
        else:
            conn.execute(
                text("UPDATE certsync_schema SET version = :v WHERE id = 1"), {"v": number}
            )
    return LATEST
