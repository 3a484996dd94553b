"""The mapping store: type and user mappings and the policy, fed by the mapping file."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, delete, func, insert, select, update

from certsync import cyclic_gc
from certsync.mappings_file import MappingFile
from certsync.models import Policy, TypeMapping, UserMapping, normal_email
from certsync.store.db import Db, chunks, table_of
from certsync.store.lock import utcnow
from certsync.store.tables import RemovedMappingRow, TypeMappingRow, UserMappingRow
from certsync.store.values import get_value, set_value

# The files the store's mappings were last imported from whole (with prune).
_SOURCE = "mappings_source"
_REVISION = "mappings_revision"

_T = table_of(TypeMappingRow)
_U = table_of(UserMappingRow)
_USER_COLUMNS = select(_U.c.natecosmic, _U.c.monotree, _U.c.monotree_email)
_RM = table_of(RemovedMappingRow)


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


class MappingStore:
    def __init__(self, db: Db) -> None:
        self._db = db

    def import_file(
        self, mapping_file: MappingFile, *, prune: bool = False, source: str | None = None
    ) -> ImportSummary:
        """Upsert the file's mappings and policy in one transaction; optionally prune the
        rest. With prune, `source` (`mappings_file.source_digest`) is remembered: the
        store then holds exactly the file those bytes make (`imported_from`)."""
        with self._db.write() as conn:
            set_value(conn, _SOURCE, (source or "") if prune else "")
            # Every import is a new revision, whatever it changed: a cycle may then stand
            # the revision for the mappings (`revision`) without reading them.
            set_value(conn, _REVISION, uuid.uuid4().hex)
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

            # Compared as columns: a mapping object is made only for those that go.
            old_users = self._user_columns(conn)
            new_users = {u.natecosmic: u for u in mapping_file.users}
            u_add = [u for k, u in new_users.items() if k not in old_users]
            u_upd = [
                u
                for k, u in new_users.items()
                if k in old_users and old_users[k] != (u.monotree, u.monotree_email)
            ]
            u_gone = [k for k in old_users if k not in new_users] if prune else []

            if t_add:
                conn.execute(insert(_T), [_type_values(t) for t in t_add])
            for t in t_upd:
                conn.execute(
                    update(_T).where(_T.c.natecosmic == t.natecosmic).values(**_type_values(t))
                )
            for chunk in chunks(t_gone):
                conn.execute(delete(_T).where(_T.c.natecosmic.in_(chunk)))
            if u_add:
                conn.execute(insert(_U), [_user_values(u) for u in u_add])
            for u in u_upd:
                conn.execute(
                    update(_U).where(_U.c.natecosmic == u.natecosmic).values(**_user_values(u))
                )
            for chunk in chunks(u_gone):
                conn.execute(delete(_U).where(_U.c.natecosmic.in_(chunk)))

            _remember_removed(
                conn,
                types=[old_types[k] for k in t_gone] + [old_types[t.natecosmic] for t in t_upd],
                users=[UserMapping(k, *old_users[k]) for k in u_gone]
                + [UserMapping(u.natecosmic, *old_users[u.natecosmic]) for u in u_upd],
                current_types=new_types,
                current_users=new_users,
            )

            policy_json = json.dumps(asdict(mapping_file.policy), sort_keys=True)
            policy_changed = get_value(conn, "policy") != policy_json
            if policy_changed:
                set_value(conn, "policy", policy_json)
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

    def imported_from(self) -> str | None:
        """The digest of the files the mappings were last imported from whole, if any."""
        with self._db.read() as conn:
            return get_value(conn, _SOURCE) or None

    def removed(self) -> tuple[list[TypeMapping], list[UserMapping]]:
        """Mappings the file stopped naming (or pointed elsewhere) and not named again."""
        with self._db.read() as conn:
            rows = list(conn.execute(select(_RM).order_by(_RM.c.kind, _RM.c.natecosmic)))
        types = [TypeMapping(r.natecosmic, r.monotree) for r in rows if r.kind == "type"]
        users = [
            UserMapping(r.natecosmic, r.monotree, r.monotree_email)
            for r in rows
            if r.kind == "user"
        ]
        return types, users

    def revision(self) -> str:
        """Changes whenever the mappings may have (every import, the only way they are
        written); empty before the first import of this release."""
        with self._db.read() as conn:
            return get_value(conn, _REVISION) or ""

    def users_without_id(self) -> list[UserMapping]:
        """The user mappings that name no Monotree id (by email): the only ones that
        may be left unresolved."""
        with self._db.read() as conn:
            return self._all_users(conn, _U.c.monotree.is_(None))

    def types(self) -> list[TypeMapping]:
        with self._db.read() as conn:
            rows = conn.execute(select(_T).order_by(_T.c.natecosmic))
            return [TypeMapping(r.natecosmic, r.monotree, bool(r.authoritative)) for r in rows]

    def users(self) -> list[UserMapping]:
        with self._db.read() as conn:
            return self._all_users(conn)

    @staticmethod
    def _all_users(conn: Connection, which: ColumnElement[bool] | None = None) -> list[UserMapping]:
        # Every deciding cycle reads them all (25,000 in a large tenant): columns unpacked
        # from rows fetched whole, a third of the CPU of reading them row by row, by name.
        query = _USER_COLUMNS if which is None else _USER_COLUMNS.where(which)
        with cyclic_gc.paused():
            rows = conn.execute(query.order_by(_U.c.natecosmic)).all()
            return [UserMapping(nc, monotree, email) for nc, monotree, email in rows]

    @staticmethod
    def _user_columns(conn: Connection) -> dict[str, tuple[int | None, str | None]]:
        """Every user mapping's Monotree id and email, by Natecosmic user: what an import
        compares, without a mapping object for each."""
        with cyclic_gc.paused():
            rows = conn.execute(_USER_COLUMNS).all()
            return {nc: (monotree, email) for nc, monotree, email in rows}

    def users_naming(self, users: Sequence[tuple[int, str | None]]) -> list[UserMapping]:
        """The user mappings that name any of these Monotree users, by id or by email."""
        ids = sorted({uid for uid, _ in users})
        emails = sorted({normal_email(e) or "" for _, e in users if e and e.strip()})
        found: dict[tuple[str, int | None, str | None], UserMapping] = {}
        with self._db.read() as conn:
            for chunk in chunks(ids):
                self._collect(conn, _U.c.monotree.in_(chunk), found)
            for some in chunks(emails):
                self._collect(conn, func.lower(_U.c.monotree_email).in_(some), found)
        return list(found.values())

    @staticmethod
    def _collect(
        conn: Connection,
        named: ColumnElement[bool],
        found: dict[tuple[str, int | None, str | None], UserMapping],
    ) -> None:
        for r in conn.execute(select(_U).where(named)):
            found[(r.natecosmic, r.monotree, r.monotree_email)] = UserMapping(
                r.natecosmic, r.monotree, r.monotree_email
            )

    def policy(self) -> Policy:
        with self._db.read() as conn:
            raw = get_value(conn, "policy")
        return Policy(**json.loads(raw)) if raw else Policy()

    def has_email(self) -> bool:
        # The greatest email, not "any row with one": one look into the index, where
        # an `IS NOT NULL` scanned every user mapping when none has one.
        with self._db.read() as conn:
            return conn.execute(select(func.max(_U.c.monotree_email))).scalar() is not None


def _type_values(t: TypeMapping) -> dict[str, Any]:
    return {"natecosmic": t.natecosmic, "monotree": t.monotree, "authoritative": t.authoritative}


def _user_values(u: UserMapping) -> dict[str, Any]:
    return {"natecosmic": u.natecosmic, "monotree": u.monotree, "monotree_email": u.monotree_email}


def _remember_removed(
    conn: Connection,
    *,
    types: Iterable[Any],
    users: Iterable[Any],
    current_types: Mapping[str, TypeMapping],
    current_users: Mapping[str, UserMapping],
) -> None:
    """Keep what a removed (or re-pointed) mapping said; forget it once the file says it again."""
    now = utcnow()
    rows = [
        {"kind": "type", "natecosmic": t.natecosmic, "monotree": t.monotree, "removed_at": now}
        for t in types
    ] + [
        {
            "kind": "user",
            "natecosmic": u.natecosmic,
            "monotree": u.monotree,
            "monotree_email": u.monotree_email,
            "removed_at": now,
        }
        for u in users
    ]
    for row in rows:
        conn.execute(
            delete(_RM).where(_RM.c.kind == row["kind"], _RM.c.natecosmic == row["natecosmic"])
        )
    if rows:
        conn.execute(insert(_RM), rows)
    # Looked up by the few removed rows, not a set of the file's 25,000 users made to
    # meet them (a third of an import that adds a few hires).
    for r in list(conn.execute(select(_RM))):
        if r.kind == "type":
            t = current_types.get(r.natecosmic)
            said_again = t is not None and t.monotree == r.monotree and r.monotree_email is None
        else:
            u = current_users.get(r.natecosmic)
            said_again = u is not None and (u.monotree, u.monotree_email) == (
                r.monotree,
                r.monotree_email,
            )
        if said_again:
            conn.execute(delete(_RM).where(_RM.c.kind == r.kind, _RM.c.natecosmic == r.natecosmic))
