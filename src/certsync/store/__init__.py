"""certsync's memory, as repositories on one database: `mappings`, `users` (Monotree's
user cache), `holdings` (ownership and what Monotree holds), `journal` (runs and
writes), `audit` (the same writes, per user and template), `held` (revocations the
guard held back, until a person decides), `deliveries` (webhooks received),
`snapshots` (the last pull), `values`, `lock` (the writer lease) and `leader` (the
daemons' leadership lease).

This package is the only one that imports SQLAlchemy or SQLModel; the
repositories return certsync's own dataclasses, and every database error
leaves as `StoreError`. SQLite by default, PostgreSQL through psycopg 3
(`postgresql://` and `postgres://` URLs are read as `postgresql+psycopg://`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from certsync.errors import ConfigError, StoreError
from certsync.models import Mappings, TemplateState, UserMapping, resolve_mappings
from certsync.settings import Settings
from certsync.store import schema, sqlite_file
from certsync.store.audit import AuditItem, AuditTrail, Pruned
from certsync.store.copy import copy_rows
from certsync.store.db import BUSY_TIMEOUT_MS, Db, translated
from certsync.store.deliveries import Deliveries, Delivery
from certsync.store.held import HeldPlan, HeldPlanError, HeldPlans
from certsync.store.holdings import HoldingStore
from certsync.store.journal import Journal, JournalEntry, RunSummary
from certsync.store.lock import LEADER, WRITER, Holder, Lease, utcnow
from certsync.store.made_from import MadeFrom
from certsync.store.mappings import ImportSummary, MappingStore
from certsync.store.snapshot import PullDelta, PullSnapshots
from certsync.store.users import UserCache
from certsync.store.values import Values

__all__ = [
    "MEMORY_URL",
    "AuditItem",
    "Delivery",
    "HeldPlan",
    "HeldPlanError",
    "Holder",
    "ImportSummary",
    "JournalEntry",
    "MadeFrom",
    "Pruned",
    "PullDelta",
    "RunSummary",
    "Store",
    "TemplateState",
    "database_password",
    "no_store_yet",
    "open_store",
    "utcnow",
]

MEMORY_URL = "sqlite://"
DEFAULT_LEASE_SECONDS = 30.0
# psycopg 3 connection options: give up on an unreachable server after 10 s; notice a
# dead connection within about 25 s (TCP keepalives), so a renewal cannot hang on a
# partition; and no server-side prepared statements, which PgBouncer in transaction
# mode would break.
_SERVER_ARGS = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "prepare_threshold": None,
}
_CREATE_KEY = 0x63657274  # "cert": the advisory lock that guards creating the schema


def engine_url(url: str) -> str:
    """The URL SQLAlchemy is given: PostgreSQL always through psycopg 3, the driver
    certsync ships, whatever dialect name the operator wrote."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _with_password(url: str, password: str | None) -> URL:
    """The URL to connect with: the password from its file, if any, put in (never shown)."""
    parsed = make_url(url)
    return parsed if password is None else parsed.set(password=password)


def _url_problem(url: str) -> str:
    """What is wrong with a URL SQLAlchemy refused, without repeating it: it may hold a
    password."""
    scheme = url.split(":", 1)[0] if ":" in url else ""
    if not scheme or "/" in scheme:
        return "it is not a database URL (sqlite:///path/to/certsync.db or postgresql://...)"
    return f"the database kind {scheme!r} is not one certsync uses (sqlite or postgresql)"


def _sqlite_path(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def no_store_yet(settings: Settings) -> bool:
    """True when the URL names a database certsync has not written yet: an SQLite file
    that does not exist (or is empty), or a server database without certsync's schema.

    Looking creates nothing, so a dry run can plan against an empty store in memory.
    """
    url = engine_url(settings.database_url)
    try:
        path = _sqlite_path(url)
    except (ArgumentError, ValueError):
        return False  # Store() says what is wrong with the URL
    if path is not None:
        return not path.exists() or path.stat().st_size == 0
    if make_url(url).get_backend_name() == "sqlite":
        return False  # in memory: Store() makes it
    password = database_password(settings)
    target = _with_password(url, password)
    engine = create_engine(target)
    try:
        with translated("could not be read"), engine.connect() as conn:
            return schema.revision(conn) is None
    finally:
        engine.dispose()


class Store:
    """One database and its repositories. One instance per process; thread-safe."""

    def __init__(
        self,
        url: str,
        *,
        lock_lease_seconds: float = DEFAULT_LEASE_SECONDS,
        password: str | None = None,
    ) -> None:
        url = engine_url(url)
        try:
            path = _sqlite_path(url)
        except (ArgumentError, ValueError):
            raise StoreError(f"cannot use CERTSYNC_DATABASE_URL: {_url_problem(url)}") from None
        if path is not None:
            sqlite_file.preflight(path)
        self._path = path
        self._errors = 0  # database errors seen: no seal at close (`sqlite_file`)
        sqlite = url.startswith("sqlite")
        try:
            target = _with_password(url, password)
            self._engine: Engine = create_engine(
                target,
                connect_args={"check_same_thread": False} if sqlite else _SERVER_ARGS,
                # A server's connections may die under us (a restart, a failover): test
                # each one before use instead of failing the next cycle's first query.
                pool_pre_ping=not sqlite,
                # One in-memory database shared by every thread, not one each.
                **({"poolclass": StaticPool} if url == MEMORY_URL else {}),
            )
        except (SQLAlchemyError, ImportError, ValueError):
            raise StoreError(f"cannot use CERTSYNC_DATABASE_URL: {_url_problem(url)}") from None
        if self._engine.dialect.name == "sqlite":
            event.listen(self._engine, "connect", _sqlite_pragmas)
            event.listen(self._engine, "handle_error", self._saw_error)
        self._db = Db(self._engine)
        self.lock = Lease(self._db, row=WRITER, lease_seconds=lock_lease_seconds)
        self.leader = Lease(self._db, row=LEADER, lease_seconds=lock_lease_seconds, fences=False)
        self.values = Values(self._db)
        self.mappings = MappingStore(self._db)
        self.users = UserCache(self._db)
        self.holdings = HoldingStore(self._db)
        self.journal = Journal(self._db)
        self.audit = AuditTrail(self._db)
        self.held = HeldPlans(self._db)
        self.deliveries = Deliveries(self._db)
        self.snapshots = PullSnapshots(self._db)
        # A new, empty database is created at the latest schema at once; an older one
        # is upgraded only by upgrade(), under the writer lock, once per process.
        with translated("could not be opened"), self._engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # Two replicas started together on an empty database: one creates the
                # schema, the other waits here and then finds it. A lock of this
                # transaction only, so it also works behind PgBouncer.
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CREATE_KEY})
            if schema.revision(conn) is None:  # no certsync schema yet, whatever else is there
                schema.upgrade(conn)
            self._db.current = schema.is_current(conn)

    @property
    def engine(self) -> Engine:
        """For the store's own tests and tools; certsync's code goes through repositories."""
        return self._engine

    @property
    def shown(self) -> str:
        """The URL as it may be printed: a password in it is masked."""
        return self._engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        self._engine.dispose()
        if self._path is None:
            return
        if self._errors:
            sqlite_file.unseal(self._path)
        else:
            sqlite_file.seal(self._path)

    def _saw_error(self, _context: Any) -> None:
        self._errors += 1

    def ping(self) -> None:
        """Raise StoreError unless the database answers (the daemon's readiness). An older
        schema answers too: a new replica stands by, ready, until the leader stops and it
        upgrades the store itself."""
        with translated("could not be reached"), self._engine.connect() as conn:
            conn.execute(select(1))

    @property
    def is_current(self) -> bool:
        return self._db.current

    def upgrade(self) -> tuple[str | None, str] | None:
        """Bring the schema to the latest; None when it already was. The caller holds the
        writer lock (`certsync db upgrade`, or a sync before its first write)."""
        if self._db.current:
            return None
        with translated("could not be upgraded"), schema.migrating(self._engine) as conn:
            moved = schema.upgrade(conn)
        self._db.current = True
        return moved

    def copy_to(self, target: Store) -> dict[str, int]:
        """Every row of this store into `target` (new and empty, both at the latest
        schema), in one transaction on the target; rows per table. The caller holds both
        writer locks."""
        self._db.require_current()
        target._db.require_current()
        with self._engine.connect() as source, target._engine.begin() as into:
            return copy_rows(source, into)

    def schema_revision(self) -> str | None:
        with translated("could not be read"), self._engine.connect() as conn:
            return schema.revision(conn)

    def resolved_mappings(
        self, users_by_email: Mapping[str, int] | None = None
    ) -> tuple[Mappings, list[UserMapping]]:
        """The stored mappings ready for the plan, and the email mappings left unresolved."""
        return resolve_mappings(
            self.mappings.types(),
            self.mappings.users(),
            self.mappings.policy(),
            self.users.by_email() if users_by_email is None else users_by_email,
        )


def database_password(settings: Settings) -> str | None:
    """The password CERTSYNC_DATABASE_PASSWORD_FILE holds, read now (a rotated Secret
    is picked up by the next command or restart); None when the setting is unset."""
    secret = settings.database_password_file
    if secret is None:
        return None
    try:
        password = secret.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise ConfigError(
            f"CERTSYNC_DATABASE_PASSWORD_FILE: cannot read {secret}: {reason}"
        ) from None
    if not password:
        raise ConfigError(f"CERTSYNC_DATABASE_PASSWORD_FILE: {secret} is empty")
    return password


def open_store(settings: Settings, url: str | None = None) -> Store:
    """The store the settings name (or `url`), with the lease and password they set."""
    return Store(
        settings.database_url if url is None else url,
        lock_lease_seconds=settings.lease.duration,
        password=database_password(settings) if url is None else None,
    )


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()
