"""What a person reviewed, and the part of a fresh plan it still allows: pure.

Two flows send only reviewed actions. `approve` sends revocations the guard held
back, each only if a fresh plan would still make exactly it (still owned,
still active in Monotree, still not held upstream, for the same reason); the
others are skipped and reported. `apply` sends a saved plan, all or nothing:
when any of its actions is no longer in the fresh plan, the plan is stale. In
both, what is sent is never more than what was reviewed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from certsync.actions import Assign, Plan, Renewal, Revoke
from certsync.engine.decide import Decision
from certsync.engine.observation import Observation
from certsync.engine.requests import write_requests
from certsync.errors import StalePlanError

Mode = Literal["approve", "apply"]


@dataclass(frozen=True)
class Reviewed:
    """The actions a person saw. Record ids are left out of the comparison: a record
    re-issued upstream with the same dates is the same action."""

    mode: Mode
    assigns: frozenset[tuple[int, int, str]] = field(default_factory=frozenset)
    renewals: frozenset[tuple[int, int, str, str]] = field(default_factory=frozenset)
    revokes: frozenset[Revoke] = field(default_factory=frozenset)

    @classmethod
    def of_plan(cls, plan: Plan, mode: Mode = "apply") -> Reviewed:
        return cls(
            mode,
            frozenset(_assign_key(a) for a in plan.assigns),
            frozenset(_renewal_key(r) for r in plan.renewals),
            frozenset(plan.revokes),
        )

    @classmethod
    def held(cls, revokes: Iterable[Revoke]) -> Reviewed:
        return cls("approve", revokes=frozenset(revokes))

    @property
    def templates(self) -> frozenset[int]:
        return frozenset(
            [a[0] for a in self.assigns]
            + [r[0] for r in self.renewals]
            + [v.certificate_id for v in self.revokes]
        )

    @property
    def size(self) -> int:
        return len(self.assigns) + len(self.renewals) + len(self.revokes)


@dataclass(frozen=True, slots=True, order=True)
class Skipped:
    """A reviewed action the fresh plan does not make, and why."""

    action: str  # assign, renew or revoke
    certificate_id: int
    user_id: int
    why: str


def _assign_key(a: Assign) -> tuple[int, int, str]:
    return (a.certificate_id, a.user_id, a.completed_at.isoformat())


def _renewal_key(r: Renewal) -> tuple[int, int, str, str]:
    return (
        r.certificate_id,
        r.user_id,
        r.completed_at.isoformat(),
        r.previous_issued_on.isoformat(),
    )


def restrict(
    reviewed: Reviewed, fresh: Plan, seen: Observation
) -> tuple[Plan, tuple[Skipped, ...]]:
    """The fresh plan's actions that a person reviewed, and the reviewed ones it lacks.

    The result holds only actions that are both reviewed and freshly planned, so it
    never exceeds the review; `fresh` should be made without the mass-revoke guard
    (the person is the guard here).
    """
    assigns = tuple(a for a in fresh.assigns if _assign_key(a) in reviewed.assigns)
    renewals = tuple(r for r in fresh.renewals if _renewal_key(r) in reviewed.renewals)
    revokes = tuple(v for v in fresh.revokes if v in reviewed.revokes)
    skipped: list[Skipped] = []
    have_a = {_assign_key(a) for a in assigns}
    have_r = {_renewal_key(r) for r in renewals}
    for cert, user, _ in sorted(reviewed.assigns - have_a):
        skipped.append(Skipped("assign", cert, user, _why_not(cert, user, fresh, seen, "assign")))
    for cert, user, _, _ in sorted(reviewed.renewals - have_r):
        skipped.append(Skipped("renew", cert, user, _why_not(cert, user, fresh, seen, "renew")))
    for v in sorted(reviewed.revokes - set(revokes)):
        skipped.append(
            Skipped("revoke", v.certificate_id, v.user_id, _why_not_revoke(v, fresh, seen))
        )
    plan = Plan(assigns=assigns, renewals=renewals, revokes=revokes)
    return plan, tuple(sorted(skipped))


def reviewed_decision(
    reviewed: Reviewed, fresh: Decision, seen: Observation, *, chunk_size: int, notify: bool
) -> tuple[Decision, tuple[Skipped, ...]]:
    """The decision a reviewed run carries out: `restrict`, batched. A saved plan
    (`apply`) with any action the fresh plan lacks is stale, and nothing is sent."""
    plan, skipped = restrict(reviewed, fresh.plan, seen)
    if reviewed.mode == "apply" and skipped:
        shown = "; ".join(
            f"{s.action} template {s.certificate_id} user {s.user_id}: {s.why}" for s in skipped[:5]
        )
        more = f" (and {len(skipped) - 5} more)" if len(skipped) > 5 else ""
        raise StalePlanError(
            f"the plan is stale: run plan again. {len(skipped)} of its {reviewed.size} "
            f"action(s) no longer hold: {shown}{more}"
        )
    requests = write_requests(plan, chunk_size=chunk_size, notify_on_revoke=notify)
    return Decision(plan, tuple(requests)), skipped


def _why_not(cert: int, user: int, fresh: Plan, seen: Observation, action: str) -> str:
    pair = (cert, user)
    planned = [(a.certificate_id, a.user_id) for a in fresh.assigns]
    planned += [(r.certificate_id, r.user_id) for r in fresh.renewals]
    if pair in planned:
        return f"the {action} is now for another date"
    held = seen.holdings.get(cert, {}).get(user)
    if held is not None and held.active:
        return "Monotree holds it now"
    return "Natecosmic no longer holds it, or its mapping changed"


def _why_not_revoke(v: Revoke, fresh: Plan, seen: Observation) -> str:
    pair = (v.certificate_id, v.user_id)
    held = seen.holdings.get(v.certificate_id, {}).get(v.user_id)
    if held is None or not held.active:
        return "no longer active in Monotree"
    if v.owned and pair not in seen.owned:
        return "certsync no longer owns it"
    if any((r.certificate_id, r.user_id) == pair for r in fresh.revokes):
        return "it is still to be revoked, but for another reason (its mapping changed)"
    return "Natecosmic holds it again (or its mapping changed): not revoked"


def digests(seen: Observation) -> dict[str, str]:
    """Fingerprints of what a decision was made on: the mappings, what certsync owns,
    and the pull. Equal digests mean nothing a plan reads has changed."""

    def digest(items: Iterable[object]) -> str:
        h = hashlib.sha256()
        for item in items:
            h.update(json.dumps(item, default=str, sort_keys=True).encode())
            h.update(b"\n")
        return h.hexdigest()[:16]

    m = seen.mappings
    return {
        "mappings": digest(
            [
                sorted((k, t.monotree, t.authoritative) for k, t in m.types.items()),
                sorted(m.users.items()),
                repr(m.policy),
            ]
        ),
        "ownership": digest(sorted(seen.owned)),
        "pull": digest(
            sorted(
                (
                    r.id,
                    r.user_id,
                    r.type_keys(),
                    r.issued_on,
                    r.expires_on,
                    r.lifecycle_status,
                    r.validity_status,
                    r.verification_status,
                )
                for r in seen.pull.records
            )
        ),
    }
