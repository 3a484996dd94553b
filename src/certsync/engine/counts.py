"""Drift caught for a few requests: Monotree's template list carries each template's
`active_users_count`; a template whose count is not what certsync knows it holds was
changed by someone else (an admin assigning or unassigning by hand), and is read in
full in this very cycle instead of waiting for the next full cycle.

What the count counts is not documented (expired holders? deactivated users?), so
each full read calibrates it: a template is trusted only when its count matched the
active holders read the last time it was read in full (`TemplateState.count_matches`).
An untrusted template is left to the full cycle; `status` says which.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from certsync.models import CountRow, Template, TemplateState
from certsync.months import add_months


@dataclass(frozen=True, slots=True)
class CountMoved:
    """A trusted template whose count is out of the range certsync expects."""

    certificate_id: int
    listed: int
    expected: tuple[int, int]  # at least, at most


def counts_moved(
    listed: Mapping[int, Template],
    candidates: Iterable[int],
    states: Mapping[int, TemplateState],
    basis: Mapping[int, list[CountRow]],
    today: date,
) -> list[CountMoved]:
    """The candidates (templates this cycle would not read) whose count moved."""
    moved = []
    for cert in candidates:
        state, template = states.get(cert), listed.get(cert)
        if state is None or state.count_matches is not True or template is None:
            continue
        count = template.active_users_count
        low, high = expected_range(basis.get(cert, []), template.validity_months, today)
        if count is not None and not low <= count <= high:
            moved.append(CountMoved(cert, count, (low, high)))
    return moved


# certsync does not learn the expiry of a certificate it assigns (Monotree sets it);
# reckoned from the issue date and the template's validity, it is taken as sure only
# this far from today.
_RECKONED = timedelta(days=31)


def expected_range(
    rows: Iterable[CountRow], validity_months: int | None, today: date
) -> tuple[int, int]:
    """How many of these holdings Monotree counts as active today: (at least, at most).
    One that expires today, or whose reckoned expiry is near, may or may not count."""
    low = high = 0
    for known, expires_on, issued, n in rows:
        expires, margin = expires_on, timedelta(0)
        if not known:
            if validity_months is None:
                expires = None
            elif issued is None:
                high += n  # no date to reckon from
                continue
            else:
                expires, margin = add_months(issued, validity_months), _RECKONED
        if expires is None or expires > today + margin:
            low, high = low + n, high + n
        elif expires >= today - margin:
            high += n
    return low, high


def untrusted(states: Mapping[int, TemplateState], templates: Iterable[int]) -> list[int]:
    """The templates whose count has not matched a full read: no drift is seen there."""
    return sorted(c for c in templates if c in states and states[c].count_matches is not True)
