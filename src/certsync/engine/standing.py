"""A whole-tenant plan, split by person, so the next cycle can decide again only for the
people whose inputs moved and still say everything a whole decision says.

Every item of a plan names one Monotree user, except an unmapped record, which names a
Natecosmic user; every count of a plan is a sum over Monotree users. And each user's
part depends only on that user's inputs: the records of the Natecosmic users mapped to
them (and of those a removed mapping still points at them), their holdings, what
certsync issued them, and whether Monotree lists them; the rest (the type mappings, the
policy, the removed mappings, the templates, today) is common to everyone. So the
plan of the tenant is its people's parts put back together, and a person whose inputs
did not move keeps their part. `touched` says who moved; tests/test_standing.py holds
the joined plan equal to the whole one, whatever changed.

Pure: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence, Set
from typing import Protocol, TypeVar

import msgspec

from certsync.actions import (
    Assign,
    Drift,
    KeptNewer,
    MissingUser,
    Plan,
    Renewal,
    Revoke,
    Unmanaged,
    Unmapped,
)
from certsync.engine.plan import Tally, assembled
from certsync.models import CertificationRecord, Policy


# Its items are frozen values of dates and numbers: no reference cycle, so the
# collector need not track 20,000 of them.
class Person(msgspec.Struct, frozen=True, array_like=True, omit_defaults=True, gc=False):
    """One Monotree user's part of a plan: its counts, then its items."""

    desired: int = 0
    owned_active: int = 0
    left_alone: int = 0
    assigns: tuple[Assign, ...] = ()
    renewals: tuple[Renewal, ...] = ()
    # Before the guard and the policy: `assembled` applies the policy, the guard follows.
    revokes: tuple[Revoke, ...] = ()
    drift: tuple[Drift, ...] = ()
    kept_newer: tuple[KeptNewer, ...] = ()
    missing_users: tuple[MissingUser, ...] = ()
    unmanaged: tuple[Unmanaged, ...] = ()


class Standing(msgspec.Struct, frozen=True):
    """A plan by person: Monotree users' parts, and unmapped records by Natecosmic user."""

    people: dict[int, Person] = msgspec.field(default_factory=dict)
    unmapped: dict[str, tuple[Unmapped, ...]] = msgspec.field(default_factory=dict)
    # People left out of `people` because their part sends something (`reported`): the
    # next cycle decides them again, as their holdings may have moved.
    sending: frozenset[int] = frozenset()


class _OfUser(Protocol):
    @property
    def user_id(self) -> int: ...


_Item = TypeVar("_Item", bound=_OfUser)


def _by_user(items: Iterable[_Item]) -> dict[int, tuple[_Item, ...]]:
    out: dict[int, list[_Item]] = {}
    for item in items:
        out.setdefault(item.user_id, []).append(item)
    return {user: tuple(found) for user, found in out.items()}


def split(
    plan: Plan, tally: Tally, records: Iterable[CertificationRecord], *, senders: bool = True
) -> Standing:
    """A plan straight from `plan_by_person` (no guard, nothing rejected) by person.
    `records` are those it was made from: an unmapped type's item names the record, not
    whose it is. Without `senders`, the people whose part sends something are left out,
    named in `sending` (`reported`): a first cycle's 95,000 assigns are not split."""
    assert not plan.rejected, "a pull with rejected records is decided whole"
    # `plan_by_person` holds every revocation back or none, by the policy alone.
    revoked = (*plan.revokes, *plan.held_back_revokes)
    if senders:
        assigns, renewals, revokes = (
            _by_user(plan.assigns),
            _by_user(plan.renewals),
            _by_user(revoked),
        )
        sending: set[int] = set()
    else:
        assigns, renewals, revokes = {}, {}, {}
        sending = {i.user_id for found in (plan.assigns, plan.renewals, revoked) for i in found}
    drift, kept_newer = _by_user(plan.drift), _by_user(plan.kept_newer)
    missing, unmanaged = _by_user(plan.missing_users), _by_user(plan.unmanaged)
    everyone = set(tally).union(assigns, renewals, revokes, drift, kept_newer, missing, unmanaged)
    people: dict[int, Person] = {}
    for user in everyone - sending:
        desired, owned_active, left_alone = tally.get(user, (0, 0, 0))
        people[user] = Person(
            desired,
            owned_active,
            left_alone,
            assigns.get(user, ()),
            renewals.get(user, ()),
            revokes.get(user, ()),
            drift.get(user, ()),
            kept_newer.get(user, ()),
            missing.get(user, ()),
            unmanaged.get(user, ()),
        )
    owner = _owners(plan.unmapped, records)
    unmapped: dict[str, list[Unmapped]] = {}
    for item in plan.unmapped:
        unmapped.setdefault(owner[item.record_id], []).append(item)
    found = {user: tuple(items) for user, items in unmapped.items()}
    return Standing(people, found, frozenset(sending))


def _owners(unmapped: Sequence[Unmapped], records: Iterable[CertificationRecord]) -> dict[str, str]:
    if not unmapped:
        return {}
    wanted = {u.record_id for u in unmapped}
    return {r.id: r.user_id for r in records if r.id in wanted}


def joined(before: Standing, again: Standing, monotree: Set[int], natecosmic: Set[str]) -> Standing:
    """`before`, with the parts of the `monotree` and `natecosmic` users decided `again`."""
    people = {u: p for u, p in before.people.items() if u not in monotree}
    people.update(again.people)
    unmapped = {u: items for u, items in before.unmapped.items() if u not in natecosmic}
    unmapped.update(again.unmapped)
    return Standing(people, unmapped, (before.sending - monotree) | again.sending)


def reported(standing: Standing) -> Standing:
    """What is kept for the next cycle: the parts of the people with nothing to send. The
    others are named (`sending`) and decided again next time, sent or not: their holdings
    may have moved, so their kept part could not stand."""
    sending = {u for u, p in standing.people.items() if p.assigns or p.renewals or p.revokes}
    people = {u: p for u, p in standing.people.items() if u not in sending}
    return Standing(people, standing.unmapped, standing.sending | sending)


def plan_of(standing: Standing, policy: Policy) -> Plan:
    """The plan its people's parts make, as `plan` would have made it whole (no one may
    be left out as `sending`)."""
    assert not standing.sending, "a part left out cannot be planned"
    people = standing.people.values()
    return assembled(
        policy,
        assigns=[i for p in people for i in p.assigns],
        renewals=[i for p in people for i in p.renewals],
        revokes=[i for p in people for i in p.revokes],
        drift=[i for p in people for i in p.drift],
        kept_newer=[i for p in people for i in p.kept_newer],
        unmapped=[i for found in standing.unmapped.values() for i in found],
        missing_users=[i for p in people for i in p.missing_users],
        unmanaged=[i for p in people for i in p.unmanaged],
        desired=sum(p.desired for p in people),
        owned_active=sum(p.owned_active for p in people),
        left_alone=sum(p.left_alone for p in people),
    )


def touched(
    *,
    changed: Set[str],
    users_before: Mapping[str, int],
    users_now: Mapping[str, int],
    removed_before: Mapping[str, int],
    removed_now: Mapping[str, int],
    written: Set[int],
    missing_before: Set[int],
    missing_now: Set[int],
) -> tuple[frozenset[str], frozenset[int]]:
    """Who must be decided again: the Natecosmic users whose records `changed` (added,
    changed or gone) or whose user mapping (or removed one) moved, the Monotree users
    they were and are mapped to, those a run `written` to since (their holdings moved),
    and those Monotree now lists or no longer does; then every Natecosmic user whose
    records reach one of those Monotree users, through a mapping or a removed one, for
    their records are part of that person's decision."""
    natecosmic = set(changed)
    for before, now in ((users_before, users_now), (removed_before, removed_now)):
        natecosmic.update(u for u in before.keys() | now.keys() if before.get(u) != now.get(u))
    monotree = set(written) | (set(missing_before) ^ set(missing_now))
    for user in natecosmic:
        for mapped in (
            users_before.get(user),
            users_now.get(user),
            removed_before.get(user),
            removed_now.get(user),
        ):
            if mapped is not None:
                monotree.add(mapped)
    natecosmic.update(u for u, m in users_now.items() if m in monotree)
    natecosmic.update(u for u, m in removed_now.items() if m in monotree)
    return frozenset(natecosmic), frozenset(monotree)
