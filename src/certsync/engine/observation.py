"""What one cycle saw: the frozen input of `decide`, made by `gather`."""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass, field

from certsync.engine.counts import CountMoved, CountRange
from certsync.models import Holding, Holdings, Mappings, Pair, Pull, Template, User


@dataclass(frozen=True)
class Observation:
    """What both APIs and the store said in one cycle: everything `decide` needs."""

    full: bool
    pull: Pull
    mappings: Mappings
    # Mappings the operator removed (or re-pointed): what only they explain is kept.
    removed: Mappings
    unresolved_emails: tuple[str, ...]
    # Mapped Monotree users absent from a user list read in this very cycle.
    missing_users: frozenset[int]
    # The user list, when this cycle read it (email mappings); empty otherwise.
    listed_users: tuple[User, ...]
    templates: Mapping[int, Template]
    # Holders read from Monotree in this cycle, by template.
    read: Mapping[int, Mapping[int, Holding]]
    # What the plan compares against: `read`, plus what certsync knows of the rest.
    holdings: Holdings
    owned: Set[Pair]  # `Pairs` from the store
    missing_templates: tuple[int, ...]
    # Templates certsync wrote to whose type mapping is gone.
    unmapped_owned: tuple[int, ...]
    # The digest of what this cycle decides from (`quiet.inputs_digest`), when a
    # cycle with the same inputs may skip its decision: incremental, nothing read.
    inputs: str | None = None
    # Templates read in full because Monotree's count of holders moved (`counts.py`),
    # and mapped ones not read whose count cannot be trusted to show such a change.
    counts_moved: tuple[CountMoved, ...] = ()
    counts_untrusted: tuple[int, ...] = ()
    # The count each watched template should show today, as reckoned in this cycle.
    count_ranges: Mapping[int, CountRange] = field(default_factory=dict)

    @property
    def unpublished_templates(self) -> tuple[int, ...]:
        return tuple(
            c
            for c in self.mappings.template_ids()
            if c in self.templates and not self.templates[c].is_published
        )
