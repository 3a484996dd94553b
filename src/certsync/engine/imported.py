"""The mapping file, imported into the store at the start of a cycle when its bytes
changed since the last import, or read in memory for a dry run."""

from __future__ import annotations

from typing import Any

import structlog

from certsync.mappings_file import MappingFile, load_mapping_file, source_digest
from certsync.settings import Settings
from certsync.store import Store

log = structlog.get_logger("certsync.engine.cycle")


def imported_mapping_file(settings: Settings, store: Store, *, dry: bool) -> MappingFile | None:
    """The mapping file for a dry run, which reads it without importing it; otherwise
    None, the file imported into the store (with prune) unless the store holds exactly
    it already: the same bytes as at the last import (parsing a 25,000-row users CSV
    cost half a second a cycle)."""
    if settings.mappings_file is None:
        return None
    source = source_digest(settings.mappings_file)
    if not dry and source is not None and source == store.mappings.imported_from():
        return None
    mapping_file = load_mapping_file(settings.mappings_file)
    if not dry:
        # Remembered only if the bytes did not change while they were read: else the
        # digest might name bytes other than those imported.
        if source != source_digest(settings.mappings_file):
            source = None
        summary = store.mappings.import_file(mapping_file, prune=True, source=source)
        if summary.changed:
            log.info("mappings.imported", **_summary_fields(summary))
        # The store holds exactly the file now: the cycle reads it from there, and the
        # parsed file (20,000 users in a large tenant) is not kept beside it.
        return None
    return mapping_file


def _summary_fields(summary: Any) -> dict[str, Any]:
    return {k: getattr(summary, k) for k in summary.__slots__}
