"""A plan split by person and put back together after deciding again only for the people
`touched` names is the plan a whole decision makes: whatever changed between the two
cycles (records, user mappings, holdings and ownership written, Monotree's user list),
with or without removed mappings, authoritative templates or `revoke = false`."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from certsync.actions import Plan
from certsync.engine.plan import plan, plan_by_person
from certsync.engine.scope import Scope
from certsync.engine.standing import Standing, joined, plan_of, reported, split, touched
from certsync.models import (
    CertificationRecord,
    CertificationType,
    Holding,
    Mappings,
    Pair,
    TypeMapping,
)
from tests.test_plan import (
    TODAY,
    USERS,
    holding_st,
    holdings_st,
    owned_st,
    records_st,
    world_holdings,
    world_mappings,
)


def whole(
    records: list[CertificationRecord],
    m: Mappings,
    have: dict[int, dict[int, Holding]],
    owned: set[Pair],
    missing: frozenset[int],
    removed: Mappings,
) -> tuple[Plan, Standing]:
    the_plan, tally = plan_by_person(
        records, m, have, owned, TODAY, missing_users=missing, removed=removed
    )
    return the_plan, split(the_plan, tally, records)


def edited(records: list[CertificationRecord], data: st.DataObject) -> list[CertificationRecord]:
    """The records after a few changes upstream: some gone, some changed, some new."""
    out = list(records)
    for _ in range(data.draw(st.integers(0, 4))):
        what = data.draw(st.sampled_from(["gone", "changed", "new"]))
        if what == "new" or not out:
            extra = data.draw(records_st.filter(bool))[0]
            if extra.id not in {r.id for r in out}:
                out.append(extra)
            continue
        i = data.draw(st.integers(0, len(out) - 1))
        if what == "gone":
            del out[i]
        else:
            r = out[i]
            out[i] = data.draw(
                st.sampled_from(
                    [
                        replace(r, lifecycle_status="revoked"),
                        replace(r, issued_on=r.issued_on + timedelta(days=40)),
                        replace(r, expires_on=TODAY - timedelta(days=1)),
                        replace(r, user_id=data.draw(st.sampled_from([*USERS, "nc-unmapped"]))),
                        replace(r, certification_type=CertificationType(slug="t0")),
                    ]
                )
            )
    return out


def remapped(users: dict[str, int], data: st.DataObject) -> dict[str, int]:
    """The user mappings after an import: one re-pointed, dropped, added, or two merged."""
    out = dict(users)
    for _ in range(data.draw(st.integers(0, 2))):
        who = data.draw(st.sampled_from([*USERS, "nc-unmapped"]))
        what = data.draw(st.sampled_from(["point", "drop"]))
        if what == "drop":
            out.pop(who, None)
        else:
            out[who] = data.draw(st.integers(1000, 1007))
    return out


def written(
    have: dict[int, dict[int, Holding]], owned: set[Pair], data: st.DataObject
) -> tuple[dict[int, dict[int, Holding]], set[Pair], set[int]]:
    """Holdings and ownership after a run's writes, and the users written to."""
    have = {cert: dict(by_user) for cert, by_user in have.items()}
    owned = set(owned)
    users: set[int] = set()
    for h in data.draw(st.lists(holding_st, max_size=3)):
        have[h.certificate_id][h.user_id] = h
        users.add(h.user_id)
    for cert, user in (
        data.draw(st.lists(st.sampled_from(sorted(owned)), max_size=2)) if owned else []
    ):
        have[cert].pop(user, None)
        owned.discard((cert, user))
        users.add(user)
    for cert, user in data.draw(owned_st):
        owned.add((cert, user))
        users.add(user)
    return have, owned, users


@settings(max_examples=400, deadline=None)
@given(
    records_st,
    holdings_st,
    owned_st,
    st.booleans(),
    st.booleans(),
    st.sets(st.integers(1000, 1007), max_size=2),
    st.sets(st.integers(1000, 1007), max_size=2),
    st.data(),
)
def test_a_plan_decided_again_for_the_touched_people_is_the_whole_plan(
    records: list[CertificationRecord],
    hs: list[Holding],
    owned: set[Pair],
    authoritative: bool,
    revoke: bool,
    missing_before: set[int],
    missing_now: set[int],
    data: st.DataObject,
) -> None:
    base = world_mappings(authoritative, revoke)
    gone_users = data.draw(
        st.dictionaries(st.sampled_from(USERS), st.integers(1000, 1007), max_size=2)
    )
    gone_types = data.draw(st.sampled_from([{}, {"t-unmapped": TypeMapping("t-unmapped", 10)}]))
    removed = Mappings(types=gone_types, users=gone_users, policy=base.policy)
    # An import between the two cycles may re-point or remove a user mapping too.
    removed_now = replace(removed, users=remapped(dict(gone_users), data))
    before = replace(base, users=remapped(dict(base.users), data))
    have = world_holdings(hs)
    _, standing = whole(records, before, have, owned, frozenset(missing_before), removed)
    # Kept without what it sends: everyone with something to send counts as written.
    standing = reported(standing)
    senders = standing.sending
    # The cycle after: what changed upstream, in the mappings, and by the run's writes.
    records_now = edited(records, data)
    now = replace(base, users=remapped(dict(before.users), data))
    have_now, owned_now, wrote = written(have, owned, data)
    old, new = {r.id: r for r in records}, {r.id: r for r in records_now}
    changed = {
        r.user_id
        for rid in old.keys() | new.keys()
        if old.get(rid) != new.get(rid)
        for r in (old.get(rid), new.get(rid))
        if r is not None
    }
    natecosmic, monotree = touched(
        changed=changed,
        users_before=before.users,
        users_now=now.users,
        removed_before=removed.users,
        removed_now=removed_now.users,
        written=wrote | senders,
        missing_before=frozenset(missing_before),
        missing_now=frozenset(missing_now),
    )
    mine = [r for r in records_now if r.user_id in natecosmic]
    again, tally = plan_by_person(
        mine,
        now,
        have_now,
        owned_now,
        TODAY,
        missing_users=frozenset(missing_now),
        scope=Scope.of_users(monotree),
        removed=removed_now,
        unmapped_too=True,
    )
    narrow = plan_of(joined(standing, split(again, tally, mine), monotree, natecosmic), now.policy)
    full = plan(
        records_now,
        now,
        have_now,
        owned_now,
        TODAY,
        missing_users=frozenset(missing_now),
        removed=removed_now,
    )
    assert narrow == full


@settings(max_examples=200, deadline=None)
@given(records_st, holdings_st, owned_st, st.booleans(), st.booleans())
def test_a_plan_put_back_together_from_its_people_is_the_plan(
    records: list[CertificationRecord],
    hs: list[Holding],
    owned: set[Pair],
    authoritative: bool,
    revoke: bool,
) -> None:
    m = world_mappings(authoritative, revoke)
    the_plan, standing = whole(records, m, world_holdings(hs), owned, frozenset(), m)
    assert plan_of(standing, m.policy) == the_plan
    # What a whole decision keeps, made without splitting what it sends first.
    _, tally = plan_by_person(records, m, world_holdings(hs), owned, TODAY, removed=m)
    assert split(the_plan, tally, records, senders=False) == reported(standing)
    kept = msgspec.msgpack.decode(msgspec.msgpack.encode(standing), type=Standing)
    assert kept == standing


def test_touched_reaches_everyone_who_shares_a_monotree_user() -> None:
    """Two Natecosmic accounts on one Monotree user: a change to one decides both again,
    and so does a removed mapping that still points there."""
    natecosmic, monotree = touched(
        changed={"nc-a"},
        users_before={"nc-a": 7, "nc-b": 7, "nc-c": 8},
        users_now={"nc-a": 7, "nc-b": 7, "nc-c": 8},
        removed_before={"nc-old": 7},
        removed_now={"nc-old": 7},
        written=set(),
        missing_before=set(),
        missing_now=set(),
    )
    assert monotree == {7} and natecosmic == {"nc-a", "nc-b", "nc-old"}


def test_a_mapping_moved_touches_both_monotree_users() -> None:
    natecosmic, monotree = touched(
        changed=set(),
        users_before={"nc-a": 7},
        users_now={"nc-a": 9, "nc-z": 9},
        removed_before={"nc-gone": 13},
        removed_now={},
        written={11},
        missing_before={12},
        missing_now=set(),
    )
    assert monotree == {7, 9, 11, 12, 13} and natecosmic == {"nc-a", "nc-z", "nc-gone"}
