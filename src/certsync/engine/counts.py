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

from collections.abc import Callable, Iterable, Mapping
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


# What a template's count should say today: the validity it was reckoned with, at least,
# at most.
CountRange = tuple[int | None, int, int]


def watched(
    listed: Mapping[int, Template], candidates: Iterable[int], states: Mapping[int, TemplateState]
) -> list[int]:
    """The candidates (templates this cycle would not read) whose count is trusted."""
    return [
        c for c in candidates if c in listed and c in states and states[c].count_matches is True
    ]


def count_ranges(
    certs: Iterable[int],
    listed: Mapping[int, Template],
    kept: Mapping[int, CountRange],
    basis_of: Callable[[list[int]], Mapping[int, list[CountRow]]],
    today: date,
) -> dict[int, CountRange]:
    """Each template's expected range today. `kept` are ranges reckoned today from the
    holdings the store still holds (the run right before this one had nothing to do);
    one reckoned with another validity, or none kept, is reckoned again from `basis_of`
    (the store's grouping of 95,000 holdings: a fifth of a quiet cycle's CPU)."""
    out: dict[int, CountRange] = {}
    again: list[int] = []
    for cert in certs:
        range_ = kept.get(cert)
        if range_ is not None and range_[0] == listed[cert].validity_months:
            out[cert] = range_
        else:
            again.append(cert)
    if again:
        basis = basis_of(again)
        for cert in again:
            validity = listed[cert].validity_months
            out[cert] = (validity, *expected_range(basis.get(cert, []), validity, today))
    return out


def counts_moved(
    listed: Mapping[int, Template], ranges: Mapping[int, CountRange]
) -> list[CountMoved]:
    """The templates whose count is out of the range certsync expects."""
    moved = []
    for cert, (_validity, low, high) in ranges.items():
        count = listed[cert].active_users_count
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
