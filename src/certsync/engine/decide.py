"""The decision of a cycle: a pure function of the observation, the scope and today.

No clock, no HTTP, no database: the same observation, scope and day always give
the same decision, which is what dry runs, tests and the journal rely on. A
decision again (`decide_again`) is one too: of the observation, the last whole
decision by person, and who changed since (`engine/standing.py`).
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass
from datetime import date

from certsync.actions import Plan
from certsync.engine import plan as planner
from certsync.engine import requests as sending
from certsync.engine.known import KnownHoldings, KnownOwnership
from certsync.engine.observation import Observation
from certsync.engine.scope import Scope
from certsync.engine.standing import Standing, joined, plan_of, reported, split
from certsync.models import Mappings
from certsync.rows import records_of
from certsync.writes import WriteRequest


@dataclass(frozen=True)
class Decision:
    """The plan after the guard, and the batched write requests that carry it out; with
    `by_person`, what to keep of it for the next cycle (`standing.reported`)."""

    plan: Plan
    requests: tuple[WriteRequest, ...]
    standing: Standing | None = None

    @property
    def guard_held(self) -> bool:
        return self.plan.guard_held


def decide(
    observation: Observation,
    scope: Scope,
    today: date,
    *,
    chunk_size: int,
    allow_mass_revoke: bool = False,
    by_person: bool = False,
) -> Decision:
    """Plan what makes Monotree hold exactly what Natecosmic says, inside `scope`, and batch it."""
    mappings = without_templates(observation.mappings, observation.missing_templates)
    records = observation.pull.records
    the_plan, tally = planner.plan_by_person(
        records,
        mappings,
        observation.holdings,
        observation.owned,
        today,
        rejected=observation.pull.rejected,
        missing_users=observation.missing_users,
        scope=scope,
        removed=observation.removed,
        tally=by_person,
    )
    # A pull with rejected records is decided whole again next time: nothing kept.
    keep = by_person and not observation.pull.rejected
    standing = split(the_plan, tally, records, senders=False) if keep else None
    return _sent(
        the_plan,
        mappings,
        observation,
        allow_mass_revoke=allow_mass_revoke,
        chunk_size=chunk_size,
        standing=standing,
    )


def decide_again(
    observation: Observation,
    before: Standing,
    today: date,
    *,
    natecosmic: Set[str],
    monotree: Set[int],
    chunk_size: int,
    allow_mass_revoke: bool = False,
) -> Decision:
    """The whole tenant's decision, made again only for the `natecosmic` and `monotree`
    users a change touched (`standing.touched`), the others' parts taken from `before`.
    Equal to `decide` over everything when `before` was decided on the same common
    inputs (tests/test_standing.py); the guard then counts the whole tenant, as there."""
    assert not observation.pull.rejected, "a pull with rejected records is decided whole"
    mappings = without_templates(observation.mappings, observation.missing_templates)
    theirs = records_of(observation.pull.records, natecosmic)
    # Their holdings and ownership alone, when the store is read on demand (`known.py`):
    # the plan looks at no one else's in this scope.
    holdings, owned = observation.holdings, observation.owned
    holdings = holdings.of_users(monotree) if isinstance(holdings, KnownHoldings) else holdings
    owned = owned.of_users(monotree) if isinstance(owned, KnownOwnership) else owned
    again, tally = planner.plan_by_person(
        theirs,
        mappings,
        holdings,
        owned,
        today,
        missing_users=observation.missing_users,
        scope=Scope.of_users(monotree),
        removed=observation.removed,
        unmapped_too=True,
    )
    whole = joined(before, split(again, tally, theirs), monotree, natecosmic)
    the_plan = plan_of(whole, mappings.policy)
    standing = reported(whole)
    return _sent(
        the_plan,
        mappings,
        observation,
        allow_mass_revoke=allow_mass_revoke,
        chunk_size=chunk_size,
        standing=standing,
    )


def _sent(
    the_plan: Plan,
    mappings: Mappings,
    observation: Observation,
    *,
    allow_mass_revoke: bool,
    chunk_size: int,
    standing: Standing | None,
) -> Decision:
    the_plan = sending.guard_revokes(
        the_plan,
        mappings.policy,
        pull_empty=not observation.pull.records,
        allow_mass_revoke=allow_mass_revoke,
    )
    requests = sending.write_requests(
        the_plan, chunk_size=chunk_size, notify_on_revoke=mappings.policy.notify_on_revoke
    )
    return Decision(the_plan, tuple(requests), standing)


def without_templates(mappings: Mappings, missing: tuple[int, ...]) -> Mappings:
    """A template Monotree does not have is planned as if unmapped: nothing is sent to it."""
    if not missing:
        return mappings
    types = {k: t for k, t in mappings.types.items() if t.monotree not in missing}
    return Mappings(types=types, users=mappings.users, policy=mappings.policy)
