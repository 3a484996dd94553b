"""From a plan to what is sent: the guard holds back what the safety rules forbid,
then the rest is batched into the fewest requests, in the order they must go.

Pure, as the plan is: the same plan always gives the same requests.
"""

from __future__ import annotations

import heapq
from dataclasses import replace

from certsync.actions import HoldBack, Plan
from certsync.batches import batches
from certsync.models import Policy
from certsync.writes import AssignItem, AssignRequest, ResetRequest, WriteRequest


def guard_revokes(
    the_plan: Plan,
    policy: Policy,
    *,
    pull_empty: bool,
    allow_mass_revoke: bool,
) -> Plan:
    """Hold back revocations the safety rules forbid; say why in the plan.

    An empty pull never revokes, whatever the override: it is far likelier to
    be an upstream fault than a company that lost every certification at once.
    """
    revokes = the_plan.revokes
    if not revokes:
        return the_plan
    reason: str | None = None
    kind = HoldBack.EMPTY_PULL
    if pull_empty:
        reason = "the Natecosmic pull held no valid record; no revocation follows an empty pull"
    elif not allow_mass_revoke:
        kind = HoldBack.MASS_REVOKE
        limit = policy.max_revoke_fraction * the_plan.owned_active
        if len(revokes) > limit and len(revokes) > policy.max_revoke_min:
            reason = (
                f"mass-revoke guard: {len(revokes)} revocations exceed "
                f"{policy.max_revoke_fraction:.0%} of {the_plan.owned_active} owned active "
                f"holdings and the minimum of {policy.max_revoke_min}; "
                "rerun with --allow-mass-revoke if this is intended"
            )
    if reason is None:
        return the_plan
    return replace(
        the_plan,
        revokes=(),
        held_back_revokes=tuple(sorted((*the_plan.held_back_revokes, *revokes))),
        held_back_reason=reason,
        held_back_kind=kind,
    )


def _pair(item: AssignItem) -> tuple[int, int]:
    return item.certificate_id, item.user_id


def write_requests(
    the_plan: Plan, *, chunk_size: int, notify_on_revoke: bool
) -> list[WriteRequest]:
    """Batch a plan into the fewest requests, in the order they must be sent.

    Resets come first: a renewal's reset must precede its assign (assign skips
    active holders). A renewal's reset and a revocation share one request per
    certificate unless revocations notify users and renewals must not.
    """
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    renew_users: dict[int, set[int]] = {}
    for r in the_plan.renewals:
        renew_users.setdefault(r.certificate_id, set()).add(r.user_id)
    revoke_users: dict[int, set[int]] = {}
    for v in the_plan.revokes:
        revoke_users.setdefault(v.certificate_id, set()).add(v.user_id)

    requests: list[WriteRequest] = []
    for cert in sorted(renew_users.keys() | revoke_users.keys()):
        renewing = renew_users.get(cert, set())
        revoking = revoke_users.get(cert, set())
        if notify_on_revoke and renewing and revoking:
            groups = [(sorted(renewing), False), (sorted(revoking), True)]
        else:
            groups = [(sorted(renewing | revoking), bool(revoking) and notify_on_revoke)]
        for users, notify in groups:
            for batch in batches(users, chunk_size):
                revoked = tuple(u for u in batch if u in revoking)
                requests.append(ResetRequest(cert, tuple(batch), notify, revoked))

    # A plan keeps its items sorted (`Plan`), so its assigns and renewals merge in order:
    # sorting them again held a key for each of a first cycle's 100,000 assigns at once,
    # the largest step of its peak (10 MB).
    items = list(
        heapq.merge(
            (AssignItem(a.certificate_id, a.user_id, a.completed_at) for a in the_plan.assigns),
            (AssignItem(r.certificate_id, r.user_id, r.completed_at) for r in the_plan.renewals),
            key=_pair,
        )
    )
    requests.extend(AssignRequest(tuple(batch)) for batch in batches(items, chunk_size))
    return requests
