"""`certsync mappings suggest`: which template each unmapped type most likely is.

It reads the pull and Monotree's templates (and the mapping file or store, to
know what is mapped already) and never changes the store. With
`--create-missing` it creates a draft template for each type nothing in
Monotree comes close to, journaled like every other write.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any, TextIO

import structlog

from certsync.cli.exit_codes import EXIT_FAILED, EXIT_OK
from certsync.clients.monotree import MonotreeClient
from certsync.clients.session import open_clients
from certsync.errors import ApiError, OutcomeUnknownError
from certsync.mappings_file import load_mapping_file
from certsync.models import Template
from certsync.redaction import Redactor
from certsync.settings import Settings, check_config
from certsync.store import no_store_yet, open_store
from certsync.suggest import SeenType, Suggestion, Thresholds, seen_types, suggest

log = structlog.get_logger("certsync.cli.suggest")


def _mapped_keys(settings: Settings) -> set[str]:
    """What is mapped already: the mapping file when one is set, else the store."""
    if settings.mappings_file is not None:
        return {t.natecosmic for t in load_mapping_file(settings.mappings_file).types}
    if no_store_yet(settings):
        return set()
    store = open_store(settings)
    try:
        return {t.natecosmic for t in store.mappings.types()}
    finally:
        store.close()


def _is_mapped(seen: SeenType, mapped: set[str]) -> bool:
    return bool({seen.key, seen.type_id, seen.slug} & mapped)


def cmd_suggest(args: argparse.Namespace, settings: Settings, out: TextIO, r: Redactor) -> int:
    check_config(settings)
    thresholds = Thresholds(
        confident=args.confident, margin=args.margin, create_below=args.create_below
    )
    mapped = _mapped_keys(settings)
    with open_clients(settings, redactor=r) as clients:
        pull = clients.natecosmic.list_certifications()
        templates = {t.id: t for t in clients.monotree.list_templates()}
        unmapped = [s for s in seen_types(pull.records) if not _is_mapped(s, mapped)]
        suggestions = suggest(unmapped, templates, thresholds)
        created: dict[str, Template] = {}
        failed = 0
        if args.create_missing:
            wanted = [s for s in suggestions if s.create]
            if args.dry_run:
                # Beside a table on stdout; on stderr when stdout is TOML or JSON to paste.
                (out if args.format == "table" else sys.stderr).write(_dry_run_lines(wanted))
            else:
                created, failed = _create(wanted, clients.monotree, settings)
    if args.format == "json":
        doc = {
            "thresholds": asdict(thresholds),
            "suggestions": [_json(s, created.get(s.seen.key)) for s in suggestions],
        }
        json.dump(doc, out, indent=2)
        out.write("\n")
    elif args.format == "toml":
        out.write(render_toml(suggestions, created))
    else:
        out.write(render_table(suggestions, created, mapped=len(mapped)))
    return EXIT_FAILED if failed else EXIT_OK


def _dry_run_lines(wanted: Sequence[Suggestion]) -> str:
    if not wanted:
        return "would create no template: every unmapped type has a candidate\n"
    return "".join(
        f"would create draft template {s.seen.title!r} "
        f"(validity {_months(s.seen.validity_months)}) for type {s.seen.key}\n"
        for s in wanted
    )


def _months(months: int | None) -> str:
    return "none" if months is None else f"{months} months"


def _create(
    wanted: Sequence[Suggestion], monotree: MonotreeClient, settings: Settings
) -> tuple[dict[str, Template], int]:
    """Create a draft for each type, journaling the intent before and the outcome after."""
    created: dict[str, Template] = {}
    failed = 0
    if not wanted:
        return created, failed
    store = open_store(settings)
    try:
        with store.lock.held(timeout=settings.sync.lock_timeout, what=f"the store {store.shown}"):
            store.upgrade()
            run_id = store.journal.start_run("create-templates")
            for seq, s in enumerate(wanted, 1):
                payload: dict[str, Any] = {
                    "title": s.seen.title,
                    "description": f"Created by certsync for the Natecosmic type {s.seen.key}.",
                    "validity_months": s.seen.validity_months,
                    "is_published": False,
                }
                journal_id = store.journal.record_creation(run_id, seq, payload)
                try:
                    template = monotree.create_template(
                        title=s.seen.title,
                        description=payload["description"],
                        validity_months=s.seen.validity_months,
                    )
                except ApiError as exc:
                    # Unknown: it may exist now; the next run finds it by its title.
                    outcome = "unknown" if isinstance(exc, OutcomeUnknownError) else "failed"
                    failed += 1
                    store.journal.record_creation_outcome(journal_id, None, outcome, str(exc))
                    log.error("suggest.create_failed", title=s.seen.title, error=str(exc))
                    continue
                store.journal.record_creation_outcome(journal_id, template.id, "ok")
                created[s.seen.key] = template
            store.journal.finish_run(
                run_id,
                outcome="partial" if failed else "converged",
                counts={"created_templates": len(created), "failed_requests": failed},
                requests={},
            )
    finally:
        store.close()
    return created, failed


def _candidate(s: Suggestion) -> str:
    if s.best is None:
        return "-"
    return f"{s.best.template_id} {s.best.title!r} ({s.best.score:.2f})"


def render_table(
    suggestions: Sequence[Suggestion], created: dict[str, Template], *, mapped: int
) -> str:
    if not suggestions:
        return f"every type in the pull is mapped ({mapped} mapping(s))\n"
    lines = [f"{'type':32}  {'records':>7}  {'best template':44}  {'runner-up':28}  verdict"]
    for s in suggestions:
        made = created.get(s.seen.key)
        if made is not None:
            verdict = f"created draft {made.id}"
        elif s.confident:
            verdict = "confident"
        elif s.best is None:
            verdict = "no match: --create-missing"
        else:
            verdict = "check by hand"
        runner = (
            "-" if s.runner_up is None else f"{s.runner_up.template_id} ({s.runner_up.score:.2f})"
        )
        lines.append(
            f"{_short(s.seen.title, 32):32}  {s.seen.records:7}  {_short(_candidate(s), 44):44}  "
            f"{runner:28}  {verdict}"
        )
    confident = sum(1 for s in suggestions if s.confident)
    unmatched = sum(1 for s in suggestions if s.best is None)
    lines.append(
        f"{len(suggestions)} unmapped type(s): {confident} confident, "
        f"{len(suggestions) - confident - unmatched} to check, {unmatched} without a match; "
        "`--format toml` prints mapping entries"
    )
    return "\n".join(lines) + "\n"


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def render_toml(suggestions: Sequence[Suggestion], created: dict[str, Template]) -> str:
    """Entries to paste into the mapping file; what is not confident stays commented out."""
    blocks = ["# certsync mappings suggest: check each entry before you paste it.\n"]
    for s in suggestions:
        made = created.get(s.seen.key)
        head = f"# {s.seen.title} ({s.seen.records} record(s))"
        if made is not None:
            blocks.append(f"{head}: draft template created\n{_entry(s.seen.key, made.id)}")
        elif s.best is None:
            blocks.append(f"{head}: no template matches; --create-missing creates a draft\n")
        elif s.confident:
            blocks.append(f"{head} -> {_candidate(s)}\n{_entry(s.seen.key, s.best.template_id)}")
        else:
            runner = "" if s.runner_up is None else f"; runner-up {s.runner_up.template_id}"
            entry = "".join(
                f"# {line}\n" for line in _entry(s.seen.key, s.best.template_id).split("\n") if line
            )
            blocks.append(f"{head} -> {_candidate(s)}, low confidence{runner}\n{entry}")
    return "\n".join(blocks)


def _entry(key: str, template_id: int) -> str:
    return f"[[types]]\nnatecosmic = {json.dumps(key)}\nmonotree = {template_id}\n"


def _json(s: Suggestion, made: Template | None) -> dict[str, Any]:
    return {
        "type": asdict(s.seen),
        "best": None if s.best is None else asdict(s.best),
        "runner_up": None if s.runner_up is None else asdict(s.runner_up),
        "confident": s.confident,
        "created_template": None if made is None else made.id,
    }
