"""Sending only what a person reviewed: the pure restriction, and held-back plans kept."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from certsync.actions import Assign, Plan, Renewal, Revoke
from certsync.engine.decide import decide
from certsync.engine.review import Reviewed, digests, restrict, reviewed_decision
from certsync.engine.scope import Scope
from certsync.errors import StalePlanError
from certsync.store import HeldPlanError, Store
from tests.test_explain import seen
from tests.test_plan import FIRE, FOOD, TODAY, held, rec

R = [Revoke(FOOD, u, owned=True) for u in (501, 502, 503)]


def test_approve_sends_exactly_the_held_revocations_still_called_for() -> None:
    """Ann's is still due; Bob holds it again upstream (skipped, reported); Cy was revoked
    upstream after the hold (due now, but not reviewed: left to the next run)."""
    observation = seen(
        [rec(user="nc-bob")],
        [held(FOOD, 501), held(FOOD, 502), held(FOOD, 503)],
        owned={(FOOD, 501), (FOOD, 502), (FOOD, 503)},
    )
    fresh = decide(observation, Scope(), TODAY, chunk_size=50, allow_mass_revoke=True)
    assert {v.user_id for v in fresh.plan.revokes} == {501, 503}
    reviewed = Reviewed.held(R[:2])  # Ann and Bob were held back; Cy was not yet due
    decision, skipped = reviewed_decision(reviewed, fresh, observation, chunk_size=50, notify=False)
    assert decision.plan.revokes == (R[0],)
    assert [(s.user_id, s.why) for s in skipped] == [
        (502, "Natecosmic holds it again (or its mapping changed): not revoked")
    ]
    assert [r.summary()["users"] for r in decision.requests] == [1]


def test_a_pair_gone_from_monotree_or_from_ownership_is_skipped_with_its_reason() -> None:
    observation = seen([], [held(FOOD, 501, active=False), held(FOOD, 502)], owned={(FOOD, 501)})
    fresh = decide(observation, Scope(), TODAY, chunk_size=50, allow_mass_revoke=True).plan
    _, skipped = restrict(Reviewed.held(R[:2]), fresh, observation)
    assert [(s.user_id, s.why) for s in skipped] == [
        (501, "no longer active in Monotree"),
        (502, "certsync no longer owns it"),
    ]


def test_a_saved_plan_is_applied_whole_or_refused_as_stale() -> None:
    observation = seen([rec()], [held(FOOD, 502)], owned={(FOOD, 502)})
    planned = decide(observation, Scope(), TODAY, chunk_size=50).plan
    saved = Reviewed.of_plan(planned)
    assert saved.size == 2  # Ann's assign, Bob's revocation
    fresh = decide(observation, Scope(), TODAY, chunk_size=50, allow_mass_revoke=True)
    decision, skipped = reviewed_decision(saved, fresh, observation, chunk_size=50, notify=False)
    assert (decision.plan.assigns, decision.plan.revokes, skipped) == (
        planned.assigns,
        planned.revokes,
        (),
    )
    # Bob's certificate was expired by hand meanwhile: the saved revocation no longer holds.
    moved = seen([rec()], [held(FOOD, 502, active=False)], owned={(FOOD, 502)})
    fresh = decide(moved, Scope(), TODAY, chunk_size=50, allow_mass_revoke=True)
    with pytest.raises(StalePlanError, match="the plan is stale: run plan again"):
        reviewed_decision(saved, fresh, moved, chunk_size=50, notify=False)


def _assigns(draw: st.DrawFn) -> frozenset[Assign]:
    pairs = draw(st.sets(st.tuples(st.sampled_from([FOOD, FIRE]), st.integers(501, 506))))
    day = draw(st.sampled_from([date(2026, 5, 1), date(2026, 6, 1)]))
    return frozenset(Assign(c, u, day, "r") for c, u in pairs)


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    revokes = draw(
        st.sets(
            st.builds(
                Revoke,
                st.sampled_from([FOOD, FIRE]),
                st.integers(501, 506),
                st.booleans(),
                st.booleans(),
            )
        )
    )
    renewals = draw(
        st.sets(
            st.builds(
                Renewal,
                st.sampled_from([FOOD, FIRE]),
                st.integers(501, 506),
                st.just(date(2026, 6, 1)),
                st.sampled_from([date(2025, 6, 1), date(2025, 1, 1)]),
                st.just("r"),
            )
        )
    )
    return Plan(
        assigns=tuple(sorted(_assigns(draw))),
        renewals=tuple(sorted(renewals)),
        revokes=tuple(sorted(revokes)),
    )


@given(reviewed_plan=plans(), fresh_plan=plans(), mode=st.sampled_from(["approve", "apply"]))
def test_what_is_sent_never_exceeds_what_was_reviewed(
    reviewed_plan: Plan, fresh_plan: Plan, mode: str
) -> None:
    """Whatever changed between review and sending: only reviewed actions go out, and a
    saved plan goes out whole or not at all."""
    reviewed = replace(Reviewed.of_plan(reviewed_plan), mode=mode)  # type: ignore[arg-type]  # sampled from the two modes
    observation = seen([], [])
    sent, skipped = restrict(reviewed, fresh_plan, observation)
    assert set(sent.revokes) <= set(reviewed_plan.revokes) & set(fresh_plan.revokes)
    assert {(a.certificate_id, a.user_id, a.completed_at) for a in sent.assigns} <= {
        (a.certificate_id, a.user_id, a.completed_at) for a in reviewed_plan.assigns
    }
    assert {(r.certificate_id, r.user_id) for r in sent.renewals} <= {
        (r.certificate_id, r.user_id) for r in reviewed_plan.renewals
    }
    assert len(sent.assigns) + len(sent.renewals) + len(sent.revokes) + len(skipped) == (
        reviewed.size
    )
    fresh = decide(observation, Scope(), TODAY, chunk_size=50)
    fresh = replace(fresh, plan=fresh_plan)
    if mode == "apply" and skipped:
        with pytest.raises(StalePlanError):
            reviewed_decision(reviewed, fresh, observation, chunk_size=50, notify=False)
    else:
        decision, _ = reviewed_decision(reviewed, fresh, observation, chunk_size=50, notify=False)
        assert decision.plan == sent


def test_digests_change_with_what_a_plan_reads_and_only_then() -> None:
    base = seen([rec()], [held(FOOD, 501)], owned={(FOOD, 501)})
    assert digests(base) == digests(seen([rec()], [held(FOOD, 501)], owned={(FOOD, 501)}))
    assert digests(base)["pull"] != digests(seen([rec(issued=date(2026, 7, 1))], []))["pull"]
    assert digests(base)["ownership"] != digests(seen([rec()], []))["ownership"]


def test_held_plans_are_kept_decided_once_and_superseded() -> None:
    store = Store("sqlite://")
    first = store.journal.start_run("incremental")
    store.held.keep(first, "mass-revoke guard: 40 > 20%", R, {"pull": "abc"})
    assert [p.run_id for p in store.held.pending()] == [first]
    assert store.held.pending_count() == 3
    assert store.held.pending_by_reason() == {"mass-revoke": 3}
    plan = store.held.open_for_decision(first)
    assert plan.revokes == tuple(R) and plan.digests == {"pull": "abc"}
    store.held.decide(first, "approved", by="alice", outcomes={(FOOD, 501): ("revoked", None)})
    with pytest.raises(HeldPlanError, match="already approved by alice"):
        store.held.open_for_decision(first)
    with pytest.raises(HeldPlanError, match="no held-back plan has the id 'nope'"):
        store.held.open_for_decision("nope")

    second = store.journal.start_run("incremental")
    assert store.held.keep(second, "again", R[:1], {}) == second
    third = store.journal.start_run("incremental")
    assert store.held.keep(third, "the same pairs", R[:1], {}) == second  # its id kept
    assert store.held.supersede(by_run=third, keep=second) == 0
    later = store.journal.start_run("full")
    assert store.held.supersede(by_run=later) == 1
    assert store.held.pending() == [] and store.held.pending_count() == 0
    superseded = store.held.get(second)
    assert superseded is not None and superseded.status == "superseded"
    store.close()
