"""A quiet cycle: when nothing a decision is made from has changed since a cycle that
decided there was nothing to do, the cycle decides nothing again.

The inputs are summed up in one digest: the pull's body (its SHA-256, or the
validators Natecosmic answered 304 to), the mappings (the store's revision of
them, and what Monotree's users make of the mappings by email), the template list
as read in this cycle (a template deleted, retitled, unpublished, or whose
`active_users_count` moved, changes it), the UTC date (a certificate expires on a
date), the chunk size and the release.
The rest a decision reads, certsync's own holdings and ownership, changes only in a
run, so the digest counts only when the run right before this one (by the store's
count of runs) is the run that recorded it, and that run ended converged.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

import msgspec

from certsync import __version__
from certsync.engine.counts import CountRange
from certsync.models import Mappings, Template
from certsync.store import MadeFrom, Store


@dataclass(frozen=True, slots=True)
class QuietCheck:
    """What `gather` needs to tell a quiet cycle: today, the chunk size, and the digest
    of the last cycle that had nothing to do (None: this cycle must decide). `ranges`:
    the template counts it expected, when reckoned today (the holdings are the same)."""

    today: date
    chunk_size: int
    since: str | None = None
    ranges: Mapping[int, CountRange] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Unchanged:
    """A cycle whose inputs are those of the last one with nothing to do: no decode, no plan."""

    inputs: str
    templates: Mapping[int, Template]
    mappings: Mappings
    unresolved_emails: tuple[str, ...]
    missing_templates: tuple[int, ...]
    unmapped_owned: tuple[int, ...] = field(default=())
    unpublished_templates: tuple[int, ...] = field(default=())
    counts_untrusted: tuple[int, ...] = field(default=())
    count_ranges: Mapping[int, CountRange] = field(default_factory=dict)


def _mappings(mappings: Mappings) -> list[object]:
    return [
        sorted((k, t.monotree, t.authoritative) for k, t in mappings.types.items()),
        sorted(mappings.users.items()),
        repr(mappings.policy),
    ]


def inputs_digest(
    *,
    made_from: MadeFrom,
    mappings_revision: str,
    by_email: Mapping[str, int],
    removed: Mappings,
    unresolved: tuple[str, ...],
    templates: Mapping[int, Template],
    check: QuietCheck,
) -> str:
    """One digest of everything a decision is made from, but the store's own holdings.

    The mappings stand as the store's revision of them (every import makes a new one),
    not as the 25,000 user mappings of a large tenant, which a quiet cycle then never
    reads; beside it, what Monotree's user list makes of them, which changes without
    an import: the mappings by email as resolved (`by_email`), and those removed."""
    document = [
        __version__,
        made_from.dumps(),
        mappings_revision,
        sorted(by_email.items()),
        _mappings(removed),
        list(unresolved),
        [repr(templates[c]) for c in sorted(templates)],
        check.today.isoformat(),
        check.chunk_size,
    ]
    # msgspec's encoder, not json.dumps: a few thousand templates' lines and mappings
    # serialised in Python cost a tenth of a quiet cycle's CPU.
    return hashlib.sha256(msgspec.json.encode(document)).hexdigest()


QUIET_KEY = "quiet_inputs"


def reckoned_on(day: date) -> str:
    """What the kept counts were reckoned on: the UTC day, and the release reckoning."""
    return f"{day.isoformat()}/{__version__}"


@dataclass(frozen=True, slots=True)
class QuietRecord:
    """Kept in the store: the run that had nothing to do (its id and its number among
    the store's runs), its inputs, and what it counted. That run changed no holding, so
    the template counts it expected (`ranges`, reckoned on `day` by this release) still
    stand that day: `day` names the release too, whose reckoning may differ."""

    run: str
    seq: int
    inputs: str
    records: int
    counts: dict[str, int]
    day: str = ""
    ranges: Mapping[int, CountRange] = field(default_factory=dict)

    def ranges_on(self, day: date) -> Mapping[int, CountRange]:
        return self.ranges if self.day == reckoned_on(day) else {}

    def dumps(self) -> str:
        return json.dumps(
            {
                "run": self.run,
                "seq": self.seq,
                "inputs": self.inputs,
                "records": self.records,
                "counts": self.counts,
                "day": self.day,
                "ranges": [[c, *r] for c, r in self.ranges.items()],
            }
        )

    @classmethod
    def loads(cls, text: str | None) -> QuietRecord | None:
        try:
            kept = json.loads(text or "null")
            return cls(
                kept["run"],
                int(kept["seq"]),
                kept["inputs"],
                int(kept["records"]),
                dict(kept["counts"]),
                str(kept.get("day", "")),
                {
                    int(c): (None if v is None else int(v), int(low), int(high))
                    for c, v, low, high in kept.get("ranges", [])
                },
            )
        except (ValueError, TypeError, KeyError):
            return None


def last_quiet(store: Store) -> QuietRecord | None:
    """The last cycle with nothing to do, when this one may compare its inputs with it:
    it was the run right before this one (by the store's count of runs, not by a clock)
    and it ended converged (a run that lost its lease or died after deciding did not)."""
    kept = QuietRecord.loads(store.values.get(QUIET_KEY))
    if kept is None or kept.seq != store.journal.sequence() - 1:
        return None
    return kept if store.journal.outcome(kept.run) == "converged" else None


def remember_quiet(
    store: Store,
    *,
    run: str,
    inputs: str,
    records: int,
    counts: dict[str, int],
    day: date,
    ranges: Mapping[int, CountRange],
) -> None:
    """Keep a run that had nothing to do (a quiet one, or one that decided nothing), for
    the next run to compare its inputs with."""
    seq = store.journal.sequence()
    kept = QuietRecord(run, seq, inputs, records, counts, reckoned_on(day), dict(ranges))
    store.values.set(QUIET_KEY, kept.dumps())
