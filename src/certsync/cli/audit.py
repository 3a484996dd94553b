"""`certsync history --user` (what certsync did for one person) and `journal prune`."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import TextIO

from certsync.cli.exit_codes import EXIT_OK
from certsync.cli.users import find_people
from certsync.people import Person
from certsync.redaction import Redactor
from certsync.settings import Settings
from certsync.store import AuditItem, open_store

_WHY = {
    "assign": "issued: Natecosmic holds it",
    "renew": "reset before a renewal (a newer issue in Natecosmic)",
    "revoke": "revoked: no longer held in Natecosmic (or its mapping removed)",
}


def cmd_history(args: argparse.Namespace, settings: Settings, out: TextIO, r: Redactor) -> int:
    store = open_store(settings)
    try:
        (person,) = find_people(settings, store, [args.user])
        since = (
            None if args.since is None else datetime.combine(args.since, datetime.min.time(), UTC)
        )
        items = (
            []
            if person.monotree_id is None
            else store.audit.for_user(person.monotree_id, since=since)
        )
    finally:
        store.close()
    if args.format == "json":
        doc = {"user": asdict(person), "items": [asdict(i) for i in items]}
        json.dump(doc, out, indent=2, default=str)
        out.write("\n")
        return EXIT_OK
    out.write(render_history(person, items))
    return EXIT_OK


def render_history(person: Person, items: list[AuditItem]) -> str:
    names = f" (Natecosmic {', '.join(person.natecosmic_ids)})" if person.natecosmic_ids else ""
    if person.monotree_id is None:
        why = (
            f"its email {person.pending_email} is not a Monotree user yet"
            if person.pending_email
            else "no mapping names a Monotree user for it"
        )
        return f"{person.label}{names}: nothing sent, {why}\n"
    if not items:
        return f"{person.label}{names}: certsync has sent nothing for this person\n"
    lines = [
        f"{person.label}{names}: {len(items)} item(s)",
        f"{'when (UTC)':19}  {'run':16}  {'kind':11}  {'template':>8}  {'action':7}  "
        f"{'issued on':10}  {'outcome':8}  why",
    ]
    for i in items:
        lines.append(
            f"{i.intent_at:%Y-%m-%d %H:%M:%S}  {i.run_id:16}  {i.run_kind:11}  "
            f"{i.certificate_id:>8}  {i.action:7}  {i.issued_on or '-'!s:10}  "
            f"{i.outcome or 'open':8}  {_WHY.get(i.action, '')}"
        )
    return "\n".join(lines) + "\n"


def cmd_journal(args: argparse.Namespace, settings: Settings, out: TextIO, r: Redactor) -> int:
    before = datetime.now(UTC) - timedelta(days=args.older_than)
    store = open_store(settings)
    try:
        with store.lock.held(timeout=settings.sync.lock_timeout, what=f"the store {store.shown}"):
            store.upgrade()
            pruned = store.audit.prune(before)
    finally:
        store.close()
    out.write(
        f"pruned finished runs started before {before:%Y-%m-%d %H:%M} UTC: {pruned.runs} run(s), "
        f"{pruned.journal_entries} journal entr(ies), {pruned.items} item(s); "
        "ownership kept\n"
    )
    return EXIT_OK
