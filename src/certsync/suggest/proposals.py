"""For each unmapped certification type, the template it most likely is: pure, no I/O."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from certsync.models import CertificationRecord, Template
from certsync.suggest.similarity import similarity


@dataclass(frozen=True, slots=True)
class Thresholds:
    """When a suggestion is confident enough to be written as a live mapping.

    `docs/mappings.md` gives the precision each default was measured at.
    """

    confident: float = 0.8  # the best template scores at least this
    margin: float = 0.1  # and beats the runner-up by at least this
    create_below: float = 0.5  # --create-missing: no template scores this much


@dataclass(frozen=True, slots=True)
class SeenType:
    """A certification type as the pull shows it: the key a mapping names, and its words."""

    key: str  # the slug when there is one, else the UUID (what `[[types]] natecosmic` takes)
    type_id: str | None
    slug: str | None
    title: str
    records: int
    validity_months: int | None  # the records' typical validity; None: mostly no expiry


@dataclass(frozen=True, slots=True)
class Candidate:
    template_id: int
    title: str
    score: float
    published: bool


@dataclass(frozen=True, slots=True)
class Suggestion:
    seen: SeenType
    best: Candidate | None
    runner_up: Candidate | None
    confident: bool

    @property
    def create(self) -> bool:
        """Worth a new draft template: nothing in Monotree comes close."""
        return self.best is None


_DAYS_PER_MONTH = 365.25 / 12


def _months_between(start: date, end: date) -> int:
    return max(1, round((end - start).days / _DAYS_PER_MONTH))


def seen_types(records: Iterable[CertificationRecord]) -> list[SeenType]:
    """Every type the pull holds, once, with its record count and typical validity."""
    found: dict[str, tuple[str | None, str | None, str]] = {}
    counts: dict[str, int] = {}
    validity: dict[str, list[int | None]] = {}
    for record in records:
        ctype = record.certification_type
        slug = ctype.slug if ctype is not None and ctype.slug else None
        type_id = record.certification_type_id or (ctype.id if ctype is not None else None)
        key = slug or type_id
        if key is None:
            continue
        title = (ctype.title if ctype is not None and ctype.title else None) or (
            slug.replace("-", " ").replace("_", " ") if slug else key
        )
        found.setdefault(key, (type_id, slug, title))
        counts[key] = counts.get(key, 0) + 1
        months = (
            None
            if record.expires_on is None or record.expires_on <= record.issued_on
            else _months_between(record.issued_on, record.expires_on)
        )
        validity.setdefault(key, []).append(months)
    out = []
    for key, (type_id, slug, title) in sorted(found.items()):
        known = [m for m in validity[key] if m is not None]
        typical = int(statistics.median_low(known)) if len(known) * 2 > len(validity[key]) else None
        out.append(SeenType(key, type_id, slug, title, counts[key], typical))
    return out


def _score(seen: SeenType, template: Template) -> float:
    by_title = similarity(seen.title, template.title)
    by_slug = similarity(seen.slug.replace("-", " "), template.title) if seen.slug else 0.0
    return max(by_title, by_slug)


def suggest(
    unmapped: Sequence[SeenType],
    templates: Mapping[int, Template],
    thresholds: Thresholds = Thresholds(),
) -> list[Suggestion]:
    """The best template and the runner-up for each type, by title similarity.

    A published template wins a tie over a draft, then the lower id.
    """
    out = []
    for seen in unmapped:
        ranked = sorted(
            (Candidate(t.id, t.title, _score(seen, t), t.is_published) for t in templates.values()),
            key=lambda c: (-c.score, not c.published, c.template_id),
        )
        ranked = [c for c in ranked if c.score >= thresholds.create_below]
        best = ranked[0] if ranked else None
        runner_up = ranked[1] if len(ranked) > 1 else None
        confident = (
            best is not None
            and best.score >= thresholds.confident
            and best.score - (runner_up.score if runner_up else 0.0) >= thresholds.margin
        )
        out.append(Suggestion(seen, best, runner_up, confident))
    return out
