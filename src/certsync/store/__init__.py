"""certsync's memory: mappings, the Monotree user cache, ownership, known holdings,
runs, the journal and the last pull. SQLite by default; the URL goes straight to
SQLAlchemy.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sqlite3
import uuid
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from certsync.errors import StoreError
from certsync.mappings_file import MappingFile
from certsync.models import (
    AssignRequest,
    CertificationRecord,
    Holding,
    Mappings,
    Pair,
    Policy,
    ResetRequest,
    TypeMapping,
    UserMapping,
    WriteRequest,
    resolve_mappings,
)
from certsync.store import schema
from certsync.store.db import translated
from certsync.store.lock import WriterLock, utcnow
from certsync.store.tables import (
    HoldingRow,
    JournalRow,
    MonotreeUserRow,
    OwnershipRow,
    PullSnapshotRow,
    RunRow,
    SettingRow,
    TemplateStateRow,
    TypeMappingRow,
    UserMappingRow,
)

__all__ = [
    "MEMORY_URL",
    "ImportSummary",
    "PullDelta",
    "RunSummary",
    "Store",
    "missing_file",
    "utcnow",
]

_T = TypeMappingRow.__table__  # type: ignore[attr-defined]
_U = UserMappingRow.__table__  # type: ignore[attr-defined]
_S = SettingRow.__table__  # type: ignore[attr-defined]
_MU = MonotreeUserRow.__table__  # type: ignore[attr-defined]
_O = OwnershipRow.__table__  # type: ignore[attr-defined]
_H = HoldingRow.__table__  # type: ignore[attr-defined]
_TS = TemplateStateRow.__table__  # type: ignore[attr-defined]
_R = RunRow.__table__  # type: ignore[attr-defined]
_J = JournalRow.__table__  # type: ignore[attr-defined]
_P = PullSnapshotRow.__table__  # type: ignore[attr-defined]

_CHUNK = 500  # keys per IN (...) clause, well under SQLite's variable limit


@dataclass(frozen=True, slots=True)
class ImportSummary:
    types_added: int = 0
    types_updated: int = 0
    types_pruned: int = 0
    users_added: int = 0
    users_updated: int = 0
    users_pruned: int = 0
    unchanged: int = 0
    policy_changed: bool = False

    @property
    def changed(self) -> bool:
        return any(
            (
                self.types_added,
                self.types_updated,
                self.types_pruned,
                self.users_added,
                self.users_updated,
                self.users_pruned,
                self.policy_changed,
            )
        )


@dataclass(frozen=True, slots=True)
class PullDelta:
    """How the latest pull differs from the one before (None counts: no earlier pull)."""

    added: int | None
    removed: int | None
    changed: int | None


@dataclass(frozen=True, slots=True)
class RunSummary:
    id: str
    kind: str
    started_at: datetime
    ended_at: datetime | None
    outcome: str | None
    exit_code: int | None
    counts: dict[str, Any]
    requests: dict[str, int]
    error: str | None


def _sqlite_path(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


MEMORY_URL = "sqlite://"


def missing_file(url: str) -> bool:
    """True when the URL names an SQLite file that does not exist yet."""
    try:
        path = _sqlite_path(url)
    except (ArgumentError, ValueError):
        return False
    return path is not None and not path.exists()


def _preflight_sqlite(path: Path) -> None:
    """Check an existing file read-only before anything may alter it; create a new one 0600."""
    if not path.exists():
        if not path.parent.is_dir():
            raise StoreError(f"database folder {path.parent} does not exist")
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            return
        except OSError as exc:
            raise StoreError(f"cannot create the database {path}: {exc.strerror}") from None
        os.close(fd)
        return
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open the database {path}: {exc}") from None
    try:
        check = conn.execute("PRAGMA quick_check").fetchone()
        if check is None or check[0] != "ok":
            detail = check[0] if check else "?"
            raise StoreError(
                f"the database {path} is corrupted (integrity check: {detail}); "
                "it was left untouched: restore a backup or move it aside"
            )
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
        if newer is not None:
            raise StoreError(
                f"the database {path} was written by a newer certsync ({newer}; this one "
                f"knows up to {schema.head()}); it was left untouched: upgrade certsync"
            )
    except sqlite3.DatabaseError as exc:
        raise StoreError(
            f"the database {path} is not a certsync database or is corrupted ({exc}); "
            "it was left untouched"
        ) from None
    finally:
        conn.close()


def _record_digest(record: CertificationRecord) -> str:
    # repr covers every field and is seven times cheaper than asdict + json.dumps,
    # which counts at 100,000 records a cycle.
    return hashlib.blake2b(repr(record).encode(), digest_size=8).hexdigest()


class Store:
    """The mapping store and journal. One instance per process; thread-safe through its engine."""

    def __init__(self, url: str, *, lock_lease_seconds: float = 120.0) -> None:
        self.url = url
        path = _sqlite_path(url)
        if path is not None:
            _preflight_sqlite(path)
        try:
            self.engine: Engine = create_engine(
                url,
                connect_args={"check_same_thread": False} if url.startswith("sqlite") else {},
                # One in-memory database shared by every thread, not one each.
                **({"poolclass": StaticPool} if url == MEMORY_URL else {}),
            )
        except (SQLAlchemyError, ImportError, ValueError) as exc:
            raise StoreError(f"cannot use CERTSYNC_DATABASE_URL: {exc}") from None
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self.lock = WriterLock(self.engine, lease_seconds=lock_lease_seconds)
        # A new, empty database is created at the latest schema at once; an older one
        # is upgraded only by upgrade(), under the writer lock, once per process.
        with translated("could not be opened"), self.engine.begin() as conn:
            if schema.is_empty(conn):
                schema.upgrade(conn)
            self._current = schema.is_current(conn)

    @property
    def shown(self) -> str:
        """The URL as it may be printed: a password in it is masked."""
        return self.engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        self.engine.dispose()

    def _require_current(self) -> None:
        if not self._current:
            raise StoreError(
                f"the store is at an older schema than this certsync's ({schema.head()}): "
                "run `certsync db upgrade` (a sync or the daemon also upgrades it, under the "
                "writer lock)"
            )

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        self._require_current()
        with translated("could not be written"), self.engine.begin() as conn:
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        self._require_current()
        with translated("could not be read"), self.engine.connect() as conn:
            yield conn

    @property
    def is_current(self) -> bool:
        return self._current

    def upgrade(self) -> tuple[str | None, str] | None:
        """Bring the schema to the latest; None when it already was. The caller holds the
        writer lock (`certsync db upgrade`, or a sync before its first write)."""
        if self._current:
            return None
        with translated("could not be upgraded"), self.engine.begin() as conn:
            moved = schema.upgrade(conn)
        self._current = True
        return moved

    def ping(self) -> None:
        """Raise StoreError unless the database answers (the daemon's readiness)."""
        with self._read() as conn:
            conn.execute(select(1))

    def schema_revision(self) -> str | None:
        with translated("could not be read"), self.engine.connect() as conn:
            return schema.revision(conn)

    # --- settings -----------------------------------------------------------------

    def _get_setting(self, conn: Connection, key: str) -> str | None:
        value = conn.execute(select(_S.c.value).where(_S.c.key == key)).scalar()
        return None if value is None else str(value)

    def _set_setting(self, conn: Connection, key: str, value: str) -> None:
        conn.execute(delete(_S).where(_S.c.key == key))
        conn.execute(insert(_S).values(key=key, value=value))

    def get_setting(self, key: str) -> str | None:
        with self._read() as conn:
            return self._get_setting(conn, key)

    def set_setting(self, key: str, value: str) -> None:
        with self._tx() as conn:
            self._set_setting(conn, key, value)

    # --- mappings -----------------------------------------------------------------

    def import_mappings(self, mapping_file: MappingFile, *, prune: bool = False) -> ImportSummary:
        """Upsert the file's mappings and policy in one transaction; optionally prune the rest."""
        with self._tx() as conn:
            old_types = {r.natecosmic: r for r in conn.execute(select(_T))}
            new_types = {t.natecosmic: t for t in mapping_file.types}
            t_add = [t for k, t in new_types.items() if k not in old_types]
            t_upd = [
                t
                for k, t in new_types.items()
                if k in old_types
                and (old_types[k].monotree, bool(old_types[k].authoritative))
                != (t.monotree, t.authoritative)
            ]
            t_gone = [k for k in old_types if k not in new_types] if prune else []

            old_users = {r.natecosmic: r for r in conn.execute(select(_U))}
            new_users = {u.natecosmic: u for u in mapping_file.users}
            u_add = [u for k, u in new_users.items() if k not in old_users]
            u_upd = [
                u
                for k, u in new_users.items()
                if k in old_users
                and (old_users[k].monotree, old_users[k].monotree_email)
                != (u.monotree, u.monotree_email)
            ]
            u_gone = [k for k in old_users if k not in new_users] if prune else []

            if t_add:
                conn.execute(insert(_T), [_type_values(t) for t in t_add])
            for t in t_upd:
                conn.execute(
                    update(_T).where(_T.c.natecosmic == t.natecosmic).values(**_type_values(t))
                )
            for chunk in _chunks(t_gone):
                conn.execute(delete(_T).where(_T.c.natecosmic.in_(chunk)))
            if u_add:
                conn.execute(insert(_U), [_user_values(u) for u in u_add])
            for u in u_upd:
                conn.execute(
                    update(_U).where(_U.c.natecosmic == u.natecosmic).values(**_user_values(u))
                )
            for chunk in _chunks(u_gone):
                conn.execute(delete(_U).where(_U.c.natecosmic.in_(chunk)))

            policy_json = json.dumps(asdict(mapping_file.policy), sort_keys=True)
            policy_changed = self._get_setting(conn, "policy") != policy_json
            if policy_changed:
                self._set_setting(conn, "policy", policy_json)
            unchanged = (len(new_types) - len(t_add) - len(t_upd)) + (
                len(new_users) - len(u_add) - len(u_upd)
            )
        return ImportSummary(
            types_added=len(t_add),
            types_updated=len(t_upd),
            types_pruned=len(t_gone),
            users_added=len(u_add),
            users_updated=len(u_upd),
            users_pruned=len(u_gone),
            unchanged=unchanged,
            policy_changed=policy_changed,
        )

    def type_mappings(self) -> list[TypeMapping]:
        with self._read() as conn:
            rows = conn.execute(select(_T).order_by(_T.c.natecosmic))
            return [TypeMapping(r.natecosmic, r.monotree, bool(r.authoritative)) for r in rows]

    def user_mappings(self) -> list[UserMapping]:
        with self._read() as conn:
            rows = conn.execute(select(_U).order_by(_U.c.natecosmic))
            return [UserMapping(r.natecosmic, r.monotree, r.monotree_email) for r in rows]

    def policy(self) -> Policy:
        raw = self.get_setting("policy")
        return Policy(**json.loads(raw)) if raw else Policy()

    def has_email_mappings(self) -> bool:
        with self._read() as conn:
            found = conn.execute(
                select(_U.c.natecosmic).where(_U.c.monotree_email.is_not(None)).limit(1)
            )
            return found.first() is not None

    def mappings(self) -> tuple[Mappings, list[UserMapping]]:
        """Mappings ready for the plan, and the email mappings the user cache cannot resolve."""
        return resolve_mappings(
            self.type_mappings(),
            self.user_mappings(),
            self.policy(),
            self.monotree_users_by_email(),
        )

    def user_labels(self, user_ids: Iterable[int]) -> dict[int, str]:
        """Email (or name) of each of these Monotree users, where the user cache knows it."""
        ids = sorted(set(user_ids))
        out: dict[int, str] = {}
        with self._read() as conn:
            for chunk in _chunks(ids):
                query = select(_MU.c.id, _MU.c.email, _MU.c.name).where(_MU.c.id.in_(chunk))
                for r in conn.execute(query):
                    if r.email or r.name:
                        out[r.id] = r.email or r.name
        return out

    # --- the Monotree user cache ------------------------------------------------

    def replace_monotree_users(self, users: Iterable[tuple[int, str | None, str | None]]) -> int:
        now = utcnow()
        rows = [
            {
                "id": uid,
                "email": email.strip().lower() if email else None,
                "name": name,
                "seen_at": now,
            }
            for uid, email, name in users
        ]
        with self._tx() as conn:
            conn.execute(delete(_MU))
            if rows:
                conn.execute(insert(_MU), rows)
            self._set_setting(conn, "users_cached_at", now.isoformat())
        return len(rows)

    def monotree_users_by_email(self) -> dict[str, int]:
        with self._read() as conn:
            rows = conn.execute(select(_MU.c.id, _MU.c.email).where(_MU.c.email.is_not(None)))
            return {r.email: r.id for r in rows}

    def monotree_user_ids(self) -> set[int] | None:
        """Every user Monotree listed at the last refresh, or None if never read."""
        with self._read() as conn:
            if self._get_setting(conn, "users_cached_at") is None:
                return None
            return {r.id for r in conn.execute(select(_MU.c.id))}

    # --- ownership and known holdings -------------------------------------------

    def owned_pairs(self) -> set[Pair]:
        with self._read() as conn:
            return {(r.certificate_id, r.user_id) for r in conn.execute(select(_O))}

    def owned_count(self) -> int:
        with self._read() as conn:
            return int(conn.execute(select(func.count()).select_from(_O)).scalar_one())

    def template_states(self) -> dict[int, TemplateStateRow]:
        with self._read() as conn:
            return {
                r.certificate_id: TemplateStateRow(**r._mapping) for r in conn.execute(select(_TS))
            }

    def known_holdings(self, certificate_ids: Iterable[int]) -> dict[int, dict[int, Holding]]:
        ids = sorted(set(certificate_ids))
        out: dict[int, dict[int, Holding]] = {c: {} for c in ids}
        with self._read() as conn:
            for chunk in _chunks(ids):
                for r in conn.execute(select(_H).where(_H.c.certificate_id.in_(chunk))):
                    out[r.certificate_id][r.user_id] = Holding(
                        r.certificate_id,
                        r.user_id,
                        bool(r.active),
                        r.issued_on,
                        r.expires_on,
                        bool(r.expiry_known),
                    )
        return out

    def save_full_read(self, certificate_id: int, holdings: Mapping[int, Holding]) -> None:
        """Replace what certsync knows of a template with what Monotree just said."""
        rows = [
            {
                "certificate_id": certificate_id,
                "user_id": h.user_id,
                "active": True,
                "issued_on": h.issued_on,
                "expires_on": h.expires_on,
                "expiry_known": h.expiry_known,
            }
            for h in holdings.values()
            if h.active
        ]
        with self._tx() as conn:
            conn.execute(delete(_H).where(_H.c.certificate_id == certificate_id))
            if rows:
                conn.execute(insert(_H), rows)
            conn.execute(delete(_TS).where(_TS.c.certificate_id == certificate_id))
            conn.execute(
                insert(_TS).values(certificate_id=certificate_id, read_at=utcnow(), dirty=False)
            )

    def mark_dirty(self, certificate_ids: Iterable[int]) -> None:
        with self._tx() as conn:
            self._mark_dirty(conn, certificate_ids)

    def _mark_dirty(self, conn: Connection, certificate_ids: Iterable[int]) -> None:
        for cert in sorted(set(certificate_ids)):
            done = conn.execute(
                update(_TS).where(_TS.c.certificate_id == cert).values(dirty=True)
            ).rowcount
            if not done:
                conn.execute(insert(_TS).values(certificate_id=cert, read_at=None, dirty=True))

    # --- runs and the journal ---------------------------------------------------

    def start_run(self, kind: str) -> str:
        run_id = uuid.uuid4().hex[:16]
        with self._tx() as conn:
            conn.execute(insert(_R).values(id=run_id, kind=kind, started_at=utcnow()))
        return run_id

    def finish_run(
        self,
        run_id: str,
        *,
        outcome: str,
        exit_code: int,
        counts: Mapping[str, Any],
        requests: Mapping[str, int],
        error: str | None = None,
    ) -> None:
        with self._tx() as conn:
            conn.execute(
                update(_R)
                .where(_R.c.id == run_id)
                .values(
                    ended_at=utcnow(),
                    outcome=outcome,
                    exit_code=exit_code,
                    counts=json.dumps(dict(counts), sort_keys=True, default=str),
                    requests=json.dumps(dict(requests), sort_keys=True),
                    error=error,
                )
            )

    def record_intent(self, run_id: str, seq: int, request: WriteRequest) -> str:
        """Journal a write before it is sent; an assign also records the ownership it creates.

        Both are committed before the request leaves, so a crash between the call
        and its outcome never loses what certsync issued.
        """
        journal_id = f"{run_id}-{seq:05d}"
        with self._tx() as conn:
            conn.execute(
                insert(_J).values(
                    id=journal_id,
                    run_id=run_id,
                    seq=seq,
                    action="assign" if isinstance(request, AssignRequest) else "reset",
                    certificate_ids=json.dumps(_certificate_ids(request)),
                    payload=json.dumps(_payload(request)),
                    intent_at=utcnow(),
                )
            )
            if isinstance(request, AssignRequest):
                pairs = [(i.certificate_id, i.user_id) for i in request.items]
                self._delete_pairs(conn, _O, pairs)
                conn.execute(
                    insert(_O),
                    [
                        {
                            "certificate_id": i.certificate_id,
                            "user_id": i.user_id,
                            "issued_on": i.completed_at,
                            "run_id": run_id,
                            "journal_id": journal_id,
                        }
                        for i in request.items
                    ],
                )
        return journal_id

    def record_outcome(
        self, journal_id: str, request: WriteRequest, outcome: str, error: str | None = None
    ) -> None:
        """Journal how a write ended and update what certsync knows of Monotree to match."""
        with self._tx() as conn:
            conn.execute(
                update(_J)
                .where(_J.c.id == journal_id)
                .values(outcome=outcome, outcome_at=utcnow(), error=error)
            )
            if outcome != "ok":
                self._mark_dirty(conn, _certificate_ids(request))
                if outcome == "failed" and isinstance(request, AssignRequest):
                    # Refused outright: nothing was issued, so nothing is owned.
                    conn.execute(delete(_O).where(_O.c.journal_id == journal_id))
                return
            if isinstance(request, AssignRequest):
                self._delete_pairs(conn, _H, [(i.certificate_id, i.user_id) for i in request.items])
                conn.execute(
                    insert(_H),
                    [
                        {
                            "certificate_id": i.certificate_id,
                            "user_id": i.user_id,
                            "active": True,
                            "issued_on": i.completed_at,
                            "expires_on": None,
                            "expiry_known": False,
                        }
                        for i in request.items
                    ],
                )
            else:
                cert = request.certificate_id
                self._delete_pairs(conn, _H, [(cert, u) for u in request.user_ids])
                self._delete_pairs(conn, _O, [(cert, u) for u in request.revoke_user_ids])

    def _delete_pairs(self, conn: Connection, table: Any, pairs: Sequence[Pair]) -> None:
        # One statement per certificate, `user_id IN (...)`: it walks the primary
        # key, where a row-value IN over pairs made SQLite scan the whole table.
        by_cert: dict[int, list[int]] = {}
        for cert, user in pairs:
            by_cert.setdefault(cert, []).append(user)
        for cert, users in by_cert.items():
            for chunk in _chunks(users):
                conn.execute(
                    delete(table).where(table.c.certificate_id == cert, table.c.user_id.in_(chunk))
                )

    def recover(self) -> tuple[int, int]:
        """Close runs a crash left open; mark their unfinished writes unknown and their
        templates dirty, so the next cycle reads Monotree to learn what happened.

        Call with the writer lock held, or a live run would be recovered under it.
        """
        with self._tx() as conn:
            open_writes = list(conn.execute(select(_J).where(_J.c.outcome.is_(None))))
            for row in open_writes:
                self._mark_dirty(conn, json.loads(row.certificate_ids))
            conn.execute(
                update(_J)
                .where(_J.c.outcome.is_(None))
                .values(outcome="unknown", outcome_at=utcnow(), error="interrupted: recovered")
            )
            closed = conn.execute(
                update(_R)
                .where(and_(_R.c.ended_at.is_(None), _R.c.kind != "dry"))
                .values(ended_at=utcnow(), outcome="interrupted", exit_code=None)
            ).rowcount
        return closed, len(open_writes)

    def recent_runs(self, limit: int = 10) -> list[RunSummary]:
        with self._read() as conn:
            rows = conn.execute(select(_R).order_by(_R.c.started_at.desc()).limit(limit))
            return [
                RunSummary(
                    r.id,
                    r.kind,
                    r.started_at,
                    r.ended_at,
                    r.outcome,
                    r.exit_code,
                    json.loads(r.counts or "{}"),
                    json.loads(r.requests or "{}"),
                    r.error,
                )
                for r in rows
            ]

    def journal(self, run_id: str | None = None) -> list[JournalRow]:
        with self._read() as conn:
            query = select(_J).order_by(_J.c.run_id, _J.c.seq)
            if run_id is not None:
                query = query.where(_J.c.run_id == run_id)
            return [JournalRow(**r._mapping) for r in conn.execute(query)]

    # --- the last pull ----------------------------------------------------------

    def save_pull(self, records: Iterable[CertificationRecord]) -> PullDelta:
        """Keep a digest per record of this pull; say what changed since the last one."""
        digests = {r.id: _record_digest(r) for r in records}
        # Pull order, light compression: sorting the keys and zlib level 6 cost half
        # a second a cycle at 100,000 records for a smaller blob nobody reads whole.
        body = base64.b64encode(zlib.compress(json.dumps(digests).encode(), 1)).decode()
        whole = hashlib.sha256(body.encode()).hexdigest()
        with self._tx() as conn:
            prev = conn.execute(select(_P.c.body).where(_P.c.id == 1)).scalar()
            conn.execute(delete(_P))
            conn.execute(
                insert(_P).values(
                    id=1, pulled_at=utcnow(), record_count=len(digests), digest=whole, body=body
                )
            )
        if prev is None:
            return PullDelta(None, None, None)
        before: dict[str, str] = json.loads(zlib.decompress(base64.b64decode(prev)))
        added = sum(1 for k in digests if k not in before)
        removed = sum(1 for k in before if k not in digests)
        changed = sum(1 for k, v in digests.items() if k in before and before[k] != v)
        return PullDelta(added, removed, changed)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute("PRAGMA busy_timeout = 10000")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _type_values(t: TypeMapping) -> dict[str, Any]:
    return {"natecosmic": t.natecosmic, "monotree": t.monotree, "authoritative": t.authoritative}


def _user_values(u: UserMapping) -> dict[str, Any]:
    return {"natecosmic": u.natecosmic, "monotree": u.monotree, "monotree_email": u.monotree_email}


def _certificate_ids(request: WriteRequest) -> list[int]:
    if isinstance(request, AssignRequest):
        return list(request.certificate_ids())
    return [request.certificate_id]


def _payload(request: WriteRequest) -> dict[str, Any]:
    if isinstance(request, ResetRequest):
        return {
            "user_ids": list(request.user_ids),
            "notify": request.notify,
            "revoke_user_ids": list(request.revoke_user_ids),
        }
    return {
        "items": [[i.certificate_id, i.user_id, i.completed_at.isoformat()] for i in request.items]
    }
