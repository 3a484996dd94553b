"""`explain`'s reasons, one test each, on the pure side where the reason is decided."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from certsync.engine.decide import decide
from certsync.engine.explain import Explanation, explain
from certsync.engine.observation import Observation
from certsync.engine.plan import is_held, not_held_because
from certsync.engine.scope import Scope
from certsync.models import (
    CertificationRecord,
    Holding,
    Mappings,
    Ownership,
    Policy,
    Pull,
    Template,
    TypeMapping,
    UserMapping,
)
from certsync.people import Person, find_person
from tests.test_plan import FIRE, FOOD, TODAY, held, maps, rec

ANN = Person("nc-ann", ("nc-ann",), 501)
TEMPLATES = {
    FOOD: Template(id=FOOD, title="Food Safety", is_published=True),
    FIRE: Template(id=FIRE, title="Fire Warden", is_published=True),
}


def seen(
    records: list[CertificationRecord],
    holdings: list[Holding],
    *,
    mappings: Mappings | None = None,
    removed: Mappings | None = None,
    owned: set[tuple[int, int]] | None = None,
    missing_users: frozenset[int] = frozenset(),
    missing_templates: tuple[int, ...] = (),
) -> Observation:
    by_cert: dict[int, dict[int, Holding]] = {FOOD: {}, FIRE: {}}
    for h in holdings:
        by_cert.setdefault(h.certificate_id, {})[h.user_id] = h
    return Observation(
        full=False,
        pull=Pull(tuple(records)),
        mappings=mappings or maps(),
        removed=removed or Mappings(types={}, users={}),
        unresolved_emails=(),
        missing_users=missing_users,
        listed_users=(),
        templates=TEMPLATES,
        read={},
        holdings=by_cert,
        owned=frozenset(owned or set()),
        missing_templates=missing_templates,
        unmapped_owned=(),
    )


def owned_by_run(*certs: int) -> dict[int, Ownership]:
    return {c: Ownership(c, 501, date(2026, 6, 1), "run-1", datetime(2026, 6, 1)) for c in certs}


def only(e: Explanation) -> str:
    (line,) = e.records
    return line.next_sync


def holding_verdict(e: Explanation, cert: int) -> str:
    return next(h.next_sync for h in e.holdings if h.template_id == cert)


def test_an_assign_due_names_the_date_and_why() -> None:
    e = explain(ANN, seen([rec()], []), {}, TODAY)
    assert only(e) == "assign, issued 2026-06-01: Monotree does not hold it"
    assert e.records[0].mapping == "food-safety -> template 12 ('Food Safety')"
    assert e.actions["assign"] == 1


def test_a_renewal_names_both_issues() -> None:
    e = explain(ANN, seen([rec()], [held(FOOD, 501, issued=date(2025, 6, 1))]), {}, TODAY)
    assert only(e) == (
        "renew (reset, then assign issued 2026-06-01): Monotree holds the older issue of 2025-06-01"
    )


def test_a_newer_date_in_monotree_is_kept() -> None:
    e = explain(ANN, seen([rec()], [held(FOOD, 501, issued=date(2026, 9, 1))]), {}, TODAY)
    assert only(e) == "nothing: Monotree holds a newer issue (2026-09-01), never downgraded"


def test_already_held_means_nothing_to_do() -> None:
    e = explain(ANN, seen([rec()], [held(FOOD, 501)]), owned_by_run(FOOD), TODAY)
    assert only(e) == "nothing: Monotree already holds this issue"
    (h,) = e.holdings
    assert (h.owned, h.owned_by_run, h.next_sync) == (True, "run-1", "keep: Natecosmic holds it")


@pytest.mark.parametrize(
    ("record", "says"),
    [
        (rec(lifecycle="revoked"), "lifecycle_status is 'revoked'"),
        (rec(validity="expired"), "validity_status is 'expired'"),
        (rec(expires=date(2026, 1, 1)), "expires_on 2026-01-01 is past"),
    ],
)
def test_a_record_not_held_names_the_field(record: CertificationRecord, says: str) -> None:
    e = explain(ANN, seen([record], []), {}, TODAY)
    assert says in str(e.records[0].not_held) and not e.records[0].held
    assert only(e) == "nothing to assign: not held in Natecosmic"


def test_unverified_is_not_held_only_when_the_policy_asks() -> None:
    strict = maps(Policy(require_verified=True))
    e = explain(ANN, seen([rec(verification="unverified")], [], mappings=strict), {}, TODAY)
    assert "require_verified" in str(e.records[0].not_held)


@given(
    lifecycle=st.sampled_from(["active", "revoked", "archived"]),
    validity=st.sampled_from(["valid", "expired", "suspended"]),
    verification=st.sampled_from(["verified", "unverified", None]),
    days=st.integers(-400, 400) | st.none(),
    strict=st.booleans(),
)
def test_the_reason_agrees_with_the_rule_the_plan_uses(
    lifecycle: str, validity: str, verification: str | None, days: int | None, strict: bool
) -> None:
    expires = None if days is None else date.fromordinal(TODAY.toordinal() + days)
    r = rec(lifecycle=lifecycle, validity=validity, verification=verification, expires=expires)
    policy = Policy(require_verified=strict)
    assert is_held(r, policy, TODAY) == (not_held_because(r, policy, TODAY) is None)


def test_a_revocation_due() -> None:
    e = explain(
        ANN,
        seen([rec(lifecycle="revoked")], [held(FOOD, 501)], owned={(FOOD, 501)}),
        owned_by_run(FOOD),
        TODAY,
    )
    assert holding_verdict(e, FOOD) == "revoke: Natecosmic no longer holds it"
    assert e.actions["revoke"] == 1


def test_a_revocation_the_guard_holds_back_says_the_guards_reason() -> None:
    """The guard counts everyone: the next sync's plan for all says it holds this one."""
    obs = seen([rec(lifecycle="revoked")], [held(FOOD, 501)], owned={(FOOD, 501)})
    everyone = decide(obs, Scope(), TODAY, chunk_size=50).plan
    guarded = replace(
        everyone,
        revokes=(),
        held_back_revokes=everyone.revokes,
        held_back_reason="mass-revoke guard: 40 revocations exceed 20% of 100",
    )
    e = explain(ANN, obs, owned_by_run(FOOD), TODAY, guarded=guarded)
    assert (
        holding_verdict(e, FOOD) == "held back: mass-revoke guard: 40 revocations exceed 20% of 100"
    )
    assert (e.actions["revoke"], e.actions["held_back"]) == (0, 1)


def test_a_revocation_the_policy_forbids() -> None:
    never = maps(Policy(revoke=False))
    obs = seen([rec(lifecycle="revoked")], [held(FOOD, 501)], mappings=never, owned={(FOOD, 501)})
    e = explain(ANN, obs, owned_by_run(FOOD), TODAY)
    assert holding_verdict(e, FOOD) == "held back: policy.revoke is false"


def test_a_holding_certsync_did_not_issue_is_left_alone() -> None:
    e = explain(ANN, seen([], [held(FOOD, 501)]), {}, TODAY)
    assert holding_verdict(e, FOOD) == (
        "left alone: certsync did not issue it and the template is not authoritative"
    )
    assert not e.holdings[0].owned


def test_an_unmapped_type_says_which_key_no_entry_maps() -> None:
    e = explain(ANN, seen([rec(ctype="forklift")], []), {}, TODAY)
    assert e.records[0].mapping == "no [[types]] entry maps 'forklift'"
    assert only(e) == "nothing: unmapped type"


def test_a_removed_type_mapping_keeps_the_holding_unmanaged() -> None:
    without_food = Mappings(
        types={"fire-warden": TypeMapping("fire-warden", FIRE)}, users={"nc-ann": 501}
    )
    removed = Mappings(types={"food-safety": TypeMapping("food-safety", FOOD)}, users={})
    obs = seen(
        [rec()], [held(FOOD, 501)], mappings=without_food, removed=removed, owned={(FOOD, 501)}
    )
    e = explain(ANN, obs, owned_by_run(FOOD), TODAY)
    assert e.records[0].mapping == "its [[types]] mapping (to template 12) was removed"
    assert holding_verdict(e, FOOD).startswith("kept, unmanaged")


def test_a_user_missing_in_monotree() -> None:
    e = explain(ANN, seen([rec()], [], missing_users=frozenset({501})), {}, TODAY)
    assert only(e) == "nothing: Monotree has no user 501"
    assert any("Monotree has no user 501" in n for n in e.notes)
    assert e.actions["assign"] == 0


def test_a_user_whose_invite_is_pending() -> None:
    pending = find_person("nc-dee", [UserMapping("nc-dee", monotree_email="dee@example.com")], {})
    assert (pending.monotree_id, pending.pending_email) == (None, "dee@example.com")
    e = explain(pending, seen([rec(user="nc-dee")], []), {}, TODAY)
    assert only(e) == "nothing: the person has no Monotree user yet"
    assert "invite pending" in e.notes[0]


def test_a_deleted_template_says_to_fix_the_mapping() -> None:
    e = explain(ANN, seen([rec()], [], missing_templates=(FOOD,)), {}, TODAY)
    assert only(e) == (
        "nothing: template 12 does not exist in Monotree (deleted?); fix the mapping"
    )


def test_an_earlier_record_of_the_same_type_gives_way_to_the_later() -> None:
    older, newer = rec("r-old", issued=date(2025, 6, 1)), rec("r-new")
    e = explain(ANN, seen([older, newer], [held(FOOD, 501)]), {}, TODAY)
    verdicts = {line.record_id: line.next_sync for line in e.records}
    assert verdicts["r-old"] == "nothing: a later record of the same type (r-new) is the one synced"


def test_drift_is_reported_not_acted_on() -> None:
    drifting = msgspec.structs.replace(held(FOOD, 501, expires=date(2027, 9, 1)), expiry_known=True)
    e = explain(ANN, seen([rec()], [drifting]), {}, TODAY)
    assert only(e).startswith("nothing: held; expiry differs (Monotree 2027-09-01")


@pytest.mark.parametrize(
    ("asked", "monotree", "natecosmic"),
    [
        ("nc-ann", 501, ("nc-ann",)),
        ("501", 501, ("nc-ann",)),
        ("Bob@Example.com", 502, ("nc-bob",)),
        ("777", 777, ()),  # a Monotree user no mapping names: still explained
        ("nc-zed", None, ("nc-zed",)),  # a Natecosmic id no mapping names
    ],
)
def test_a_user_is_found_by_any_of_their_ids(
    asked: str, monotree: int | None, natecosmic: tuple[str, ...]
) -> None:
    mappings = [UserMapping("nc-ann", 501), UserMapping("nc-bob", monotree_email="bob@example.com")]
    person = find_person(asked, mappings, {"bob@example.com": 502})
    assert (person.monotree_id, person.natecosmic_ids) == (monotree, natecosmic)
