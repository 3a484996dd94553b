"""`certsync explain USER`: why one person has (or lacks) each certificate. No write.

Reads the pull (or, with `--from-snapshot`, the one the last sync kept), Monotree's
template list (titles, deleted templates) and the person's certificates: three
requests, or two. The next sync's plan for everyone is
made from the store's picture of Monotree, without a request, to say whether
the mass-revoke guard would hold this person's revocations back.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, replace
from datetime import UTC, datetime
from typing import Any, TextIO

from certsync.actions import Plan
from certsync.cli.exit_codes import EXIT_OK
from certsync.cli.users import find_people
from certsync.clients.session import Clients, open_clients
from certsync.engine.decide import decide
from certsync.engine.explain import Explanation, explain
from certsync.engine.gather import gather_users
from certsync.engine.observation import Observation
from certsync.engine.scope import Scope
from certsync.errors import CertsyncError
from certsync.mappings_file import load_mapping_file
from certsync.models import Holding, Pull
from certsync.redaction import Redactor
from certsync.settings import Settings, check_config
from certsync.store import MEMORY_URL, Store, no_store_yet, open_store


def cmd_explain(args: argparse.Namespace, settings: Settings, out: TextIO, r: Redactor) -> int:
    check_config(settings)
    store = open_store(settings, MEMORY_URL if no_store_yet(settings) else None)
    try:
        (person,) = find_people(settings, store, [args.user])
        mapping_file = (
            None if settings.mappings_file is None else load_mapping_file(settings.mappings_file)
        )
        now = datetime.now(UTC)
        users = frozenset([person.monotree_id] if person.monotree_id is not None else [])
        kept = None
        if args.from_snapshot:
            kept = store.snapshots.load()
            if kept is None:
                raise NoKeptPullError(
                    "no pull is kept in the store yet (a sync keeps one): run a sync, or "
                    "explain without --from-snapshot"
                )
        with open_clients(settings, redactor=r) as clients:
            seen = gather_users(
                store=store,
                clients=clients,
                mapping_file=mapping_file,
                user_ids=users,
                now=now,
                say=lambda _text: None,
                lap=lambda _name: None,
                file_imported=False,
                pull=None if kept is None else Pull(kept.records, kept.rejected),
            )
            seen = _with_templates(seen, clients)
        ownership = (
            {} if person.monotree_id is None else store.holdings.ownership_of(person.monotree_id)
        )
        guarded = _next_sync_for_everyone(store, seen, now, settings.sync.chunk_size)
    finally:
        store.close()
    explanation = explain(person, seen, ownership, now.date(), guarded=guarded)
    pulled_at = None if kept is None else kept.pulled_at
    if args.format == "json":
        doc = {**_json(explanation), "pull": {"kept_at": pulled_at}}
        json.dump(doc, out, indent=2, default=str)
        out.write("\n")
    else:
        if pulled_at is not None:
            out.write(f"records from the pull kept at {pulled_at:%Y-%m-%d %H:%M:%S} UTC\n")
        out.write(render_explanation(explanation))
    return EXIT_OK


class NoKeptPullError(CertsyncError):
    """`--from-snapshot` before any sync kept a pull."""


def _with_templates(seen: Observation, clients: Clients) -> Observation:
    listed = {t.id: t for t in clients.monotree.list_templates()}
    missing = tuple(c for c in seen.mappings.template_ids() if c not in listed)
    return replace(seen, templates=listed, missing_templates=missing)


def _next_sync_for_everyone(
    store: Store, seen: Observation, now: datetime, chunk_size: int
) -> Plan:
    """The next sync's plan, from the store's picture of every template and this
    person's fresh one: enough to say what the mass-revoke guard would do."""
    owned = seen.owned
    templates = set(seen.mappings.template_ids()) | {c for c, _ in owned}
    holdings: dict[int, dict[int, Holding]] = store.holdings.known(templates)
    for cert, by_user in seen.holdings.items():
        holdings.setdefault(cert, {}).update(by_user)
    everyone = replace(seen, holdings=holdings)
    return decide(everyone, Scope(), now.date(), chunk_size=chunk_size).plan


def _json(e: Explanation) -> dict[str, Any]:
    return {
        "user": asdict(e.person),
        "next_sync": dict(e.actions),
        "records": [asdict(r) for r in e.records],
        "holdings": [asdict(h) for h in e.holdings],
        "notes": list(e.notes),
    }


def render_explanation(e: Explanation) -> str:
    p = e.person
    names = ", ".join(p.natecosmic_ids) or "no Natecosmic user"
    a = e.actions
    lines = [
        f"{p.label} (Natecosmic {names})",
        f"next sync: assign {a['assign']}, renew {a['renew']}, revoke {a['revoke']}, "
        f"held back {a['held_back']}",
    ]
    for note in e.notes:
        lines.append(f"note: {note}")
    lines.append("")
    lines.append(f"Natecosmic records ({len(e.records)}):")
    for r in e.records:
        title = f" {r.type_title!r}" if r.type_title else ""
        expires = f", expires {r.expires_on}" if r.expires_on else ", no expiry"
        lines += [
            f"  {r.record_id}  type {r.type_key}{title}, issued {r.issued_on}{expires}",
            f"      mapping:   {r.mapping}",
            f"      held:      {'yes' if r.held else f'no: {r.not_held}'}",
            f"      next sync: {r.next_sync}",
        ]
    if not e.records:
        lines.append("  none")
    lines.append("")
    lines.append(f"Monotree certificates ({len(e.holdings)}):")
    for h in e.holdings:
        title = f" {h.title!r}" if h.title else ""
        state = "active" if h.active else "expired"
        expires = f", expires {h.expires_on}" if h.expires_on else ""
        owned = (
            f"yes, issued {h.owned_since} by run {h.owned_by_run}"
            if h.owned
            else "no (certsync did not issue it)"
        )
        lines += [
            f"  template {h.template_id}{title}: {state}, issued {h.issued_on or '?'}{expires}",
            f"      certsync's: {owned}",
            f"      next sync:  {h.next_sync}",
        ]
    if not e.holdings:
        lines.append("  none")
    return "\n".join(lines) + "\n"
