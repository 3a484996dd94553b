"""The decision of a cycle: a pure function of the observation, the scope and today.

No clock, no HTTP, no database: the same observation, scope and day always give
the same decision, which is what dry runs, tests and the journal rely on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from certsync.actions import Plan
from certsync.engine import plan as planner
from certsync.engine import requests as sending
from certsync.engine.observation import Observation
from certsync.engine.scope import Scope
from certsync.models import Mappings
from certsync.writes import WriteRequest


@dataclass(frozen=True)
class Decision:
    """The plan after the guard, and the batched write requests that carry it out."""

    plan: Plan
    requests: tuple[WriteRequest, ...]

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
) -> Decision:
    """Plan what makes Monotree hold what Natecosmic says, inside `scope`, and batch it."""
    mappings = _without_templates(observation.mappings, observation.missing_templates)
    the_plan = planner.plan(
        observation.pull.records,
        mappings,
        observation.holdings,
        observation.owned,
        today,
        rejected=observation.pull.rejected,
        missing_users=observation.missing_users,
        scope=scope,
        removed=observation.removed,
    )
    the_plan = sending.guard_revokes(
        the_plan,
        mappings.policy,
        pull_empty=not observation.pull.records,
        allow_mass_revoke=allow_mass_revoke,
    )
    requests = sending.write_requests(
        the_plan, chunk_size=chunk_size, notify_on_revoke=mappings.policy.notify_on_revoke
    )
    return Decision(the_plan, tuple(requests))


def _without_templates(mappings: Mappings, missing: tuple[int, ...]) -> Mappings:
    """A template Monotree does not have is planned as if unmapped: nothing is sent to it."""
    if not missing:
        return mappings
    types = {k: t for k, t in mappings.types.items() if t.monotree not in missing}
    return Mappings(types=types, users=mappings.users, policy=mappings.policy)
