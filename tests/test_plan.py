"""The pure plan: one test per rule of the README's "What one sync does", then its laws as properties."""

from __future__ import annotations

import math
from collections.abc import Iterable, Set
from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from certsync.actions import Assign, Plan, Renewal, Revoke, Unmanaged
from certsync.engine.plan import plan
from certsync.engine.requests import guard_revokes, write_requests
from certsync.engine.scope import Scope
from certsync.models import (
    CertificationRecord,
    CertificationType,
    Holding,
    Holdings,
    Mappings,
    Pair,
    Policy,
    TypeMapping,
)
from certsync.writes import AssignRequest, ResetRequest

TODAY = date(2026, 11, 23)
FOOD, FIRE = 12, 14


def rec(
    rid: str = "r1",
    user: str = "nc-ann",
    ctype: str = "food-safety",
    issued: date = date(2026, 6, 1),
    expires: date | None = date(2027, 6, 1),
    lifecycle: str = "active",
    validity: str = "valid",
    verification: str | None = "verified",
) -> CertificationRecord:
    return CertificationRecord(
        id=rid,
        user_id=user,
        issued_on=issued,
        lifecycle_status=lifecycle,
        validity_status=validity,
        certification_type=CertificationType(slug=ctype),
        expires_on=expires,
        verification_status=verification,
    )


def maps(policy: Policy = Policy(), authoritative: bool = False) -> Mappings:
    return Mappings(
        types={
            "food-safety": TypeMapping("food-safety", FOOD, authoritative),
            "fire-warden": TypeMapping("fire-warden", FIRE),
        },
        users={"nc-ann": 501, "nc-bob": 502, "nc-cy": 503},
        policy=policy,
    )


def held(
    cert: int,
    user: int,
    issued: date = date(2026, 6, 1),
    expires: date | None = date(2027, 6, 1),
    active: bool = True,
) -> Holding:
    return Holding(cert, user, active, issued, expires)


def holdings(*items: Holding) -> dict[int, dict[int, Holding]]:
    out: dict[int, dict[int, Holding]] = {FOOD: {}, FIRE: {}}
    for h in items:
        out.setdefault(h.certificate_id, {})[h.user_id] = h
    return out


def run(
    records: Iterable[CertificationRecord],
    have: Holdings | None = None,
    owned: Set[Pair] = frozenset(),
    m: Mappings | None = None,
    missing_users: Set[int] = frozenset(),
) -> Plan:
    return plan(
        list(records),
        m or maps(),
        have if have is not None else holdings(),
        owned,
        TODAY,
        missing_users=missing_users,
    )


def test_fresh_assign() -> None:
    """A held record with no holding in Monotree is assigned as of its issue date."""
    p = run([rec()])
    assert [(a.certificate_id, a.user_id, a.completed_at) for a in p.assigns] == [
        (FOOD, 501, date(2026, 6, 1))
    ]
    assert not p.renewals and not p.revokes


def test_idempotent_when_monotree_already_matches() -> None:
    """When Monotree holds the same issue, nothing is written."""
    p = run([rec()], holdings(held(FOOD, 501)), owned={(FOOD, 501)})
    assert not p.has_writes


def test_revoke_of_an_owned_holding() -> None:
    """An owned, active holding no longer held upstream is revoked."""
    p = run([rec(lifecycle="revoked")], holdings(held(FOOD, 501)), owned={(FOOD, 501)})
    assert p.revokes == (Revoke(FOOD, 501, owned=True),)


def test_a_holding_certsync_did_not_issue_is_left_alone() -> None:
    """An active holding certsync never issued is not revoked, and is counted as left alone."""
    p = run([], holdings(held(FOOD, 501)))
    assert p.revokes == () and p.left_alone == 1


def test_an_unowned_holding_is_revoked_when_the_mapping_is_authoritative() -> None:
    """authoritative = true lets certsync revoke a holding it did not issue."""
    p = run([], holdings(held(FOOD, 501)), m=maps(authoritative=True))
    assert p.revokes == (Revoke(FOOD, 501, owned=False),)


def without_user(m: Mappings, natecosmic: str) -> Mappings:
    users = {k: v for k, v in m.users.items() if k != natecosmic}
    return Mappings(types=m.types, users=users, policy=m.policy)


def without_type(m: Mappings, key: str) -> Mappings:
    types = {k: t for k, t in m.types.items() if k != key}
    return Mappings(types=types, users=m.users, policy=m.policy)


def test_removing_a_user_mapping_keeps_owned_holdings_as_unmanaged() -> None:
    """A removed mapping is a configuration change: nothing is revoked, ownership is kept."""
    p = run(
        [rec()], holdings(held(FOOD, 501)), owned={(FOOD, 501)}, m=without_user(maps(), "nc-ann")
    )
    assert p.revokes == () and p.unmanaged == (Unmanaged(FOOD, 501, "user"),)
    assert p.owned_active == 1


def test_removing_a_type_mapping_keeps_owned_holdings_as_unmanaged() -> None:
    """Holdings of a template no longer mapped (known from earlier reads) are unmanaged."""
    have = holdings(held(FOOD, 501), held(FOOD, 502))
    p = run([rec()], have, owned={(FOOD, 501)}, m=without_type(maps(), "food-safety"))
    # 502's holding was never certsync's, and the template is no longer managed: not counted.
    assert p.revokes == () and p.unmanaged == (Unmanaged(FOOD, 501, "type"),)
    assert p.left_alone == 0


def test_revoke_unmapped_revokes_them_through_the_guard() -> None:
    policy = Policy(revoke_unmapped=True, max_revoke_min=0, max_revoke_fraction=0.5)
    m = without_user(maps(policy), "nc-ann")
    have = holdings(held(FOOD, 501), held(FIRE, 501), held(FOOD, 502))
    owned = {(FOOD, 501), (FIRE, 501), (FOOD, 502)}
    p = run([rec(user="nc-bob")], have, owned=owned, m=m)
    assert p.revokes == (
        Revoke(FOOD, 501, True, unmapped=True),
        Revoke(FIRE, 501, True, unmapped=True),
    )
    assert p.unmanaged == ()
    guarded = guard_revokes(p, policy, pull_empty=False, allow_mass_revoke=False)
    assert guarded.revokes == () and len(guarded.held_back_revokes) == 2  # 2 of 3 > 50%


def test_removing_one_of_two_types_on_a_template_revokes_nothing() -> None:
    """Two types map to one template; the one that explained Bob's holding is removed."""
    two = Mappings(
        types={
            "cpr-adult": TypeMapping("cpr-adult", FOOD),
            "cpr-child": TypeMapping("cpr-child", FOOD),
        },
        users={"nc-bob": 502},
    )
    kept = without_type(two, "cpr-child")
    removed = Mappings(types={"cpr-child": two.types["cpr-child"]}, users={})
    records = [rec(user="nc-bob", ctype="cpr-child")]
    have, owned = holdings(held(FOOD, 502)), {(FOOD, 502)}
    assert run(records, have, owned, m=kept).revokes  # without the memory: revoked
    p = plan(records, kept, have, owned, TODAY, removed=removed)
    assert p.revokes == () and p.unmanaged == (Unmanaged(FOOD, 502, "type"),)


def test_removing_one_of_two_users_on_a_monotree_user_revokes_nothing() -> None:
    both = Mappings(types=maps().types, users={"nc-ann": 501, "nc-ann-old": 501})
    kept = without_user(both, "nc-ann-old")
    removed = Mappings(types={}, users={"nc-ann-old": 501})
    records = [rec(user="nc-ann-old")]
    have, owned = holdings(held(FOOD, 501)), {(FOOD, 501)}
    p = plan(records, kept, have, owned, TODAY, removed=removed)
    assert p.revokes == () and p.unmanaged == (Unmanaged(FOOD, 501, "user"),)


def test_an_authoritative_template_still_revokes_a_holder_no_mapping_ever_named() -> None:
    removed = Mappings(types={}, users={"nc-gone": 509})
    p = plan([], maps(authoritative=True), holdings(held(FOOD, 777)), set(), TODAY, removed=removed)
    assert p.revokes == (Revoke(FOOD, 777, owned=False),)


def test_a_holding_that_matched_before_certsync_ran_is_not_adopted() -> None:
    """A holding that already matched is not owned, so a later upstream revocation leaves it."""
    first = run([rec()], holdings(held(FOOD, 501)))
    assert not first.has_writes
    later = run([rec(lifecycle="revoked")], holdings(held(FOOD, 501)))
    assert later.revokes == ()


def test_renewal_resets_before_it_assigns() -> None:
    """An older issue in Monotree is renewed: a reset request precedes the assign."""
    p = run([rec(issued=date(2026, 9, 1))], holdings(held(FOOD, 501, issued=date(2025, 9, 1))))
    assert [(r.user_id, r.previous_issued_on, r.completed_at) for r in p.renewals] == [
        (501, date(2025, 9, 1), date(2026, 9, 1))
    ]
    requests = write_requests(p, chunk_size=500, notify_on_revoke=False)
    assert isinstance(requests[0], ResetRequest) and requests[0].user_ids == (501,)
    assert isinstance(requests[1], AssignRequest)
    assert requests[1].items[0].completed_at == date(2026, 9, 1)
    assert requests[0].revoke_user_ids == ()


def test_a_newer_issue_in_monotree_is_kept() -> None:
    """Monotree's newer issue is never downgraded; it is reported as kept."""
    p = run([rec(issued=date(2026, 1, 1))], holdings(held(FOOD, 501, issued=date(2026, 6, 1))))
    assert not p.has_writes
    assert [(k.monotree_issued_on, k.natecosmic_issued_on) for k in p.kept_newer] == [
        (date(2026, 6, 1), date(2026, 1, 1))
    ]


def test_several_records_for_one_pair_the_latest_issue_wins() -> None:
    """Of several held records for one pair, the latest issued_on is the one assigned."""
    p = run(
        [
            rec("a", issued=date(2026, 1, 1)),
            rec("b", issued=date(2026, 8, 1)),
            rec("c", issued=date(2026, 3, 1)),
        ]
    )
    assert [(a.completed_at, a.record_id) for a in p.assigns] == [(date(2026, 8, 1), "b")]


def test_not_held_records_are_not_desired() -> None:
    """Expired by date, invalid, or inactive records do not count as held."""
    p = run(
        [
            rec("a", expires=TODAY - timedelta(days=1)),
            rec("b", user="nc-bob", validity="expired"),
            rec("c", user="nc-cy", lifecycle="archived"),
            rec("d", ctype="fire-warden", expires=TODAY),
        ]
    )
    assert [(a.certificate_id, a.record_id) for a in p.assigns] == [(FIRE, "d")]


def test_unmapped_type() -> None:
    """A record whose type has no mapping is reported as unmapped type, not an error."""
    p = run([rec(ctype="forklift")])
    assert [(u.kind, u.key) for u in p.unmapped] == [("type", "forklift")]
    assert not p.assigns


def test_type_matched_by_uuid_before_slug() -> None:
    """A mapping may name the type by UUID; the record's certification_type_id finds it."""
    r = CertificationRecord(
        "r", "nc-ann", date(2026, 6, 1), "active", "valid", certification_type_id="uuid-1"
    )
    m = Mappings(types={"uuid-1": TypeMapping("uuid-1", FOOD)}, users={"nc-ann": 501})
    assert run([r], m=m).assigns[0].certificate_id == FOOD


def test_unmapped_user() -> None:
    """A record whose user has no mapping is reported as unmapped user."""
    p = run([rec(user="nc-zed")])
    assert [(u.kind, u.key) for u in p.unmapped] == [("user", "nc-zed")]


def test_a_user_missing_in_monotree_is_reported_not_assigned() -> None:
    """A mapped Monotree user that Monotree does not list is reported, and nothing is sent for it."""
    p = run([rec(), rec("b", user="nc-bob")], missing_users=frozenset({501}))
    assert [a.user_id for a in p.assigns] == [502]
    assert [m.user_id for m in p.missing_users] == [501]


def test_require_verified() -> None:
    """With require_verified, an unverified record is not held."""
    records = [rec(verification="unverified"), rec("b", user="nc-bob")]
    assert len(run(records).assigns) == 2
    p = run(records, m=maps(Policy(require_verified=True)))
    assert [a.user_id for a in p.assigns] == [502]


def test_expiry_drift_is_reported_only() -> None:
    """Monotree's expiry more than a day off Natecosmic's is drift: reported, never written."""
    p = run(
        [rec(expires=date(2027, 6, 1))],
        holdings(held(FOOD, 501, expires=date(2027, 12, 1))),
        owned={(FOOD, 501)},
    )
    assert not p.has_writes
    assert [(d.monotree_expires_on, d.natecosmic_expires_on) for d in p.drift] == [
        (date(2027, 12, 1), date(2027, 6, 1))
    ]
    within_a_day = run(
        [rec(expires=date(2027, 6, 1))], holdings(held(FOOD, 501, expires=date(2027, 6, 2)))
    )
    assert within_a_day.drift == ()


def test_unknown_expiry_is_not_drift() -> None:
    """A holding certsync wrote itself, expiry not yet read back, is not reported as drift."""
    h = Holding(FOOD, 501, True, date(2026, 6, 1), None, expiry_known=False)
    assert run([rec()], holdings(h)).drift == ()


def test_mass_revoke_guard_holds_revocations_back() -> None:
    """More than 20% of owned active holdings and more than 10: revocations are held back."""
    users = {f"nc-{i}": 1000 + i for i in range(50)}
    m = Mappings(types={"food-safety": TypeMapping("food-safety", FOOD)}, users=users)
    have = holdings(*(held(FOOD, 1000 + i) for i in range(50)))
    owned = {(FOOD, 1000 + i) for i in range(50)}
    keep = [rec(f"r{i}", user=f"nc-{i}") for i in range(35)]  # 15 of 50 dropped upstream
    p = run(keep, have, owned, m=m)
    assert len(p.revokes) == 15 and p.owned_active == 50
    guarded = guard_revokes(p, m.policy, pull_empty=False, allow_mass_revoke=False)
    assert guarded.revokes == () and len(guarded.held_back_revokes) == 15
    assert "mass-revoke guard" in (guarded.held_back_reason or "")
    assert guard_revokes(p, m.policy, pull_empty=False, allow_mass_revoke=True).revokes == p.revokes
    few = run(keep + [rec(f"r{i}", user=f"nc-{i}") for i in range(35, 45)], have, owned, m=m)
    assert (
        guard_revokes(few, m.policy, pull_empty=False, allow_mass_revoke=False).revokes
        == few.revokes
    )


def test_an_empty_pull_never_revokes() -> None:
    """An empty pull holds every revocation back, even with the override."""
    p = run([], holdings(held(FOOD, 501)), owned={(FOOD, 501)})
    guarded = guard_revokes(p, Policy(), pull_empty=True, allow_mass_revoke=True)
    assert guarded.revokes == () and "empty" in (guarded.held_back_reason or "")


def test_revoke_false_in_policy_plans_no_revocation() -> None:
    """policy.revoke = false: nothing is revoked; what would have been is reported."""
    p = run([], holdings(held(FOOD, 501)), owned={(FOOD, 501)}, m=maps(Policy(revoke=False)))
    assert p.revokes == () and len(p.held_back_revokes) == 1


def test_revocations_and_renewal_resets_share_one_request_per_certificate() -> None:
    """A renewal's reset and a revocation on one certificate travel in one reset request."""
    p = run(
        [rec(issued=date(2026, 9, 1)), rec("b", user="nc-bob", lifecycle="revoked")],
        holdings(held(FOOD, 501, issued=date(2025, 1, 1)), held(FOOD, 502)),
        owned={(FOOD, 502)},
    )
    requests = write_requests(p, chunk_size=500, notify_on_revoke=False)
    resets = [r for r in requests if isinstance(r, ResetRequest)]
    assert (
        len(resets) == 1
        and resets[0].user_ids == (501, 502)
        and resets[0].revoke_user_ids == (502,)
    )
    split = write_requests(p, chunk_size=500, notify_on_revoke=True)
    assert [(r.user_ids, r.notify) for r in split if isinstance(r, ResetRequest)] == [
        ((501,), False),
        ((502,), True),
    ]


def test_assigns_are_chunked_across_certificates() -> None:
    """All assigns share bodies of at most chunk_size users, across certificates."""
    records = [rec(f"a{u}", user=u) for u in ("nc-ann", "nc-bob", "nc-cy")]
    records += [rec(f"f{u}", user=u, ctype="fire-warden") for u in ("nc-ann", "nc-bob")]
    requests = write_requests(run(records), chunk_size=2, notify_on_revoke=False)
    assert [len(r.items) for r in requests if isinstance(r, AssignRequest)] == [2, 2, 1]


def test_the_plan_is_sorted_and_deterministic() -> None:
    """The same input in another order gives the same plan."""
    records = [
        rec("a", user="nc-cy"),
        rec("b", user="nc-ann"),
        rec("c", user="nc-bob", ctype="fire-warden"),
    ]
    assert run(records) == run(list(reversed(records)))
    keys = [(a.certificate_id, a.user_id) for a in run(records).assigns]
    assert keys == sorted(keys) == [(FOOD, 501), (FOOD, 503), (FIRE, 502)]


# --- the laws, over random worlds ---------------------------------------------------

USERS = [f"nc-{i}" for i in range(6)]
TYPES = {"t0": 10, "t1": 11, "t2": 11}  # two types may share one template
DATES = [date(2026, 1, 1) + timedelta(days=30 * k) for k in range(10)]

records_st = st.lists(
    st.builds(
        lambda i, u, t, d, life, valid, exp: CertificationRecord(
            id=f"r{i}",
            user_id=u,
            issued_on=d,
            lifecycle_status=life,
            validity_status=valid,
            certification_type=CertificationType(slug=t),
            expires_on=exp,
        ),
        st.integers(0, 10_000),
        st.sampled_from([*USERS, "nc-unmapped"]),
        st.sampled_from([*TYPES, "t-unmapped"]),
        st.sampled_from(DATES),
        st.sampled_from(["active", "active", "revoked"]),
        st.sampled_from(["valid", "valid", "expired"]),
        st.one_of(
            st.none(), st.sampled_from([TODAY - timedelta(days=3), TODAY + timedelta(days=300)])
        ),
    ),
    max_size=25,
    unique_by=lambda r: r.id,
)
holding_st = st.builds(
    lambda c, u, a, d: Holding(c, 1000 + u, a, d, None),
    st.sampled_from([10, 11]),
    st.integers(0, 6),
    st.booleans(),
    st.sampled_from(DATES),
)


holdings_st = st.lists(holding_st, max_size=20)
owned_st = st.sets(st.tuples(st.sampled_from([10, 11]), st.integers(1000, 1006)))


def world_mappings(authoritative: bool, revoke: bool = True) -> Mappings:
    return Mappings(
        types={k: TypeMapping(k, v, authoritative and v == 11) for k, v in TYPES.items()},
        users={u: 1000 + i for i, u in enumerate(USERS)},
        policy=Policy(revoke=revoke),
    )


def world_holdings(hs: list[Holding]) -> dict[int, dict[int, Holding]]:
    have: dict[int, dict[int, Holding]] = {10: {}, 11: {}}
    for h in hs:
        have[h.certificate_id][h.user_id] = h
    return have


def apply_plan(p: Plan, have: dict[int, dict[int, Holding]], owned: set[Pair]) -> None:
    """What Monotree and the journal look like after every write of the plan succeeded."""
    for v in p.revokes:
        have[v.certificate_id].pop(v.user_id, None)
        owned.discard((v.certificate_id, v.user_id))
    issued: list[Assign | Renewal] = [*p.assigns, *p.renewals]
    for a in issued:
        have[a.certificate_id][a.user_id] = Holding(
            a.certificate_id, a.user_id, True, a.completed_at, None, False
        )
        owned.add((a.certificate_id, a.user_id))


@settings(max_examples=300, deadline=None)
@given(records_st, holdings_st, owned_st, st.booleans())
def test_applying_a_plan_then_planning_again_gives_an_empty_plan(
    records: list[CertificationRecord], hs: list[Holding], owned: set[Pair], authoritative: bool
) -> None:
    """Law: after the plan's writes, the next plan has nothing to write."""
    m = world_mappings(authoritative)
    have = world_holdings(hs)
    first = plan(records, m, have, owned, TODAY)
    apply_plan(first, have, owned)
    second = plan(records, m, have, owned, TODAY)
    assert not second.has_writes, second


@settings(max_examples=300, deadline=None)
@given(records_st, holdings_st, owned_st, st.booleans())
def test_nothing_unowned_is_revoked_unless_authoritative(
    records: list[CertificationRecord], hs: list[Holding], owned: set[Pair], authoritative: bool
) -> None:
    """Law: every revocation names an owned holding or an authoritative template."""
    m = world_mappings(authoritative)
    have = world_holdings(hs)
    p = plan(records, m, have, owned, TODAY)
    allowed = m.authoritative_templates()
    for v in p.revokes:
        assert (v.certificate_id, v.user_id) in owned or v.certificate_id in allowed
        assert have[v.certificate_id][v.user_id].active


@settings(max_examples=300, deadline=None)
@given(records_st, holdings_st, owned_st, st.integers(1, 7), st.booleans())
def test_write_requests_meet_the_lower_bound(
    records: list[CertificationRecord],
    hs: list[Holding],
    owned: set[Pair],
    chunk: int,
    notify: bool,
) -> None:
    """Law: requests = ceil(assigned users / chunk) + per certificate ceil(reset users / chunk)."""
    m = world_mappings(False)
    have = world_holdings(hs)
    p = plan(records, m, have, owned, TODAY)
    requests = write_requests(p, chunk_size=chunk, notify_on_revoke=notify)
    assigned = len(p.assigns) + len(p.renewals)
    bound = math.ceil(assigned / chunk)
    for cert in (10, 11):
        renew = {r.user_id for r in p.renewals if r.certificate_id == cert}
        revoke = {v.user_id for v in p.revokes if v.certificate_id == cert}
        if notify and renew and revoke:
            bound += math.ceil(len(renew) / chunk) + math.ceil(len(revoke) / chunk)
        else:
            bound += math.ceil(len(renew | revoke) / chunk)
    assert len(requests) == bound
    sent = [
        (i.certificate_id, i.user_id)
        for r in requests
        if isinstance(r, AssignRequest)
        for i in r.items
    ]
    assert len(sent) == len(set(sent)) == assigned


@settings(max_examples=300, deadline=None)
@given(records_st, holdings_st, owned_st, st.booleans(), st.integers(0, 5))
def test_removing_a_user_mapping_never_adds_a_revocation(
    records: list[CertificationRecord],
    hs: list[Holding],
    owned: set[Pair],
    authoritative: bool,
    dropped: int,
) -> None:
    """Law: without revoke_unmapped, a plan with fewer mappings revokes a subset of what the
    full mapping revokes; what it no longer manages is exactly the owned holdings it lists
    as unmanaged."""
    m = world_mappings(authoritative)
    keys = sorted(m.users)
    gone = keys[dropped % len(keys)]
    reduced = without_user(m, gone)
    removed = Mappings(types={}, users={gone: m.users[gone]})
    have = world_holdings(hs)
    full = plan(records, m, have, owned, TODAY)
    less = plan(records, reduced, have, owned, TODAY, removed=removed)
    assert set(less.revokes) <= set(full.revokes)
    for u in less.unmanaged:
        assert u.reason == "user"


scope_st = st.builds(
    Scope,
    users=st.none() | st.frozensets(st.sampled_from([1000 + i for i in range(len(USERS))])),
    templates=st.none() | st.frozensets(st.sampled_from(sorted(TYPES.values()))),
)


def _pairs_of(p: Plan) -> dict[str, list[tuple[int, int]]]:
    """Every action and report of a plan that names a (certificate, user) pair."""
    return {
        name: [(item.certificate_id, item.user_id) for item in getattr(p, name)]
        for name in (
            "assigns",
            "renewals",
            "revokes",
            "held_back_revokes",
            "unmanaged",
            "drift",
            "kept_newer",
            "missing_users",
        )
    }


@settings(max_examples=300, deadline=None)
@given(records_st, holdings_st, owned_st, st.booleans(), scope_st)
def test_no_action_falls_outside_the_scope(
    records: list[CertificationRecord],
    hs: list[Holding],
    owned: set[Pair],
    authoritative: bool,
    scope: Scope,
) -> None:
    """Law: whatever the data, a scoped plan names no pair outside its scope."""
    p = plan(records, world_mappings(authoritative), world_holdings(hs), owned, TODAY, scope=scope)
    for name, pairs in _pairs_of(p).items():
        assert all(scope.has(*pair) for pair in pairs), name
    if not scope.is_everything:
        assert p.unmapped == ()


@settings(max_examples=300, deadline=None)
@given(records_st, holdings_st, owned_st, st.booleans(), scope_st)
def test_a_scoped_plan_is_the_full_plan_restricted_to_the_scope(
    records: list[CertificationRecord],
    hs: list[Holding],
    owned: set[Pair],
    authoritative: bool,
    scope: Scope,
) -> None:
    """Law: with complete observations, planning inside a scope changes nothing inside it."""
    m, have = world_mappings(authoritative), world_holdings(hs)
    full = plan(records, m, have, owned, TODAY)
    scoped = plan(records, m, have, owned, TODAY, scope=scope)
    restricted = {
        name: [pair for pair in pairs if scope.has(*pair)]
        for name, pairs in _pairs_of(full).items()
    }
    assert _pairs_of(scoped) == restricted
    in_scope_owned = sum(
        1
        for cert, by_user in have.items()
        for user, h in by_user.items()
        if h.active and (cert, user) in owned and scope.has(cert, user)
    )
    assert scoped.owned_active == in_scope_owned  # the guard counts within the scope


def test_the_guard_counts_within_the_scope() -> None:
    """Revoking a user's only owned holding is 100% of that user's scope: the guard holds it."""
    policy = Policy(max_revoke_min=0, max_revoke_fraction=0.5)
    have = holdings(held(FOOD, 501), held(FOOD, 502), held(FIRE, 502))
    owned = {(FOOD, 501), (FOOD, 502), (FIRE, 502)}
    records = [rec(user="nc-bob"), rec(rid="r2", user="nc-bob", ctype="fire-warden")]
    scoped = plan(records, maps(policy), have, owned, TODAY, scope=Scope.of_users([501]))
    assert scoped.revokes == (Revoke(FOOD, 501, owned=True),) and scoped.owned_active == 1
    guarded = guard_revokes(scoped, policy, pull_empty=False, allow_mass_revoke=False)
    assert guarded.revokes == () and guarded.guard_held


def test_assigns_and_renewals_go_out_in_one_order_by_certificate_and_user() -> None:
    """A renewal's assign takes its place among the plain assigns, by certificate and
    user, so the batches are the same whatever kind of action each item came from."""
    day = date(2026, 1, 1)
    the_plan = Plan(
        assigns=(Assign(1, 3, day, "a"), Assign(1, 7, day, "b"), Assign(2, 1, day, "c")),
        renewals=(Renewal(1, 5, day, day - timedelta(days=400), "d"), Renewal(3, 2, day, day, "e")),
    )
    requests = write_requests(the_plan, chunk_size=2, notify_on_revoke=False)
    sent = [
        (i.certificate_id, i.user_id)
        for r in requests
        if isinstance(r, AssignRequest)
        for i in r.items
    ]
    assert sent == [(1, 3), (1, 5), (1, 7), (2, 1), (3, 2)]
    assert [len(r.items) for r in requests if isinstance(r, AssignRequest)] == [2, 2, 1]
