"""The last whole decision, kept by person, and when the next cycle may decide again only
for the people a change touched (`standing.py`, `decide.decide_again`).

A kept decision stands for this cycle's when all of these hold; else the cycle decides
whole, and keeps that decision for the next one:

- the run right before this one made it (by the store's count of runs, not a clock; a
  quiet run in between, which changed nothing, carries it on): no other run wrote
  since, so holdings and ownership moved only where that run wrote;
- the same UTC day (a record expires on a date), the same release, and the same common
  inputs: type mappings, policy, removed type mappings, the templates Monotree lacks,
  and the templates certsync knows holdings of (a user mapping added, re-pointed or
  removed touches its people alone);
- this cycle read no template in full (a read replaces what the store knew of every
  holder) and its pull rejected no record;
- the pull it was made from is the one this cycle's snapshot was compared with, so the
  snapshot's delta names every Natecosmic user whose records changed.
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from collections.abc import Mapping, Set
from dataclasses import dataclass
from datetime import date

import msgspec
import structlog

from certsync import __version__
from certsync.engine.decide import Decision, decide, decide_again, without_templates
from certsync.engine.observation import Observation
from certsync.engine.scope import Scope
from certsync.engine.standing import Standing, touched
from certsync.store import PullDelta, Store

log = structlog.get_logger("certsync.engine.narrow")

_KEY = "decided_by_person"
# Which run kept it: a value of its own, so a quiet run carries it on without
# rewriting the decision (a megabyte at 20,000 people).
_SEQ_KEY = "decided_by_person_seq"


class Decided(msgspec.Struct, frozen=True):
    """A whole decision by person, and what it was made from."""

    common: str  # `common_digest`: the release and the day are part of it
    made_from: str  # the pull's body (`MadeFrom.dumps`)
    users: dict[str, int]  # the user mappings, Natecosmic to Monotree
    removed_users: dict[str, int]  # those taken out of the file (or re-pointed)
    missing_users: frozenset[int]
    # The people the run wrote to (or was to: a write held back or failed counts too).
    written: frozenset[int]
    standing: Standing


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(Decided)


def common_digest(observation: Observation, today: date) -> str:
    """What every person's part of a decision depends on alike."""
    mappings = without_templates(observation.mappings, observation.missing_templates)
    removed = observation.removed
    document = [
        __version__,
        today.isoformat(),
        sorted((k, t.monotree, t.authoritative) for k, t in mappings.types.items()),
        repr(mappings.policy),
        sorted((k, t.monotree, t.authoritative) for k, t in removed.types.items()),
        sorted(observation.missing_templates),
        sorted(observation.holdings),
    ]
    return hashlib.sha256(msgspec.json.encode(document)).hexdigest()


def last_decided(store: Store) -> Decided | None:
    """The decision kept by the run right before this one; None otherwise."""
    if store.values.get(_SEQ_KEY) != str(store.journal.sequence() - 1):
        return None
    text = store.values.get(_KEY)
    try:
        return None if text is None else _DECODER.decode(zlib.decompress(base64.b64decode(text)))
    except (ValueError, zlib.error, msgspec.DecodeError):
        return None  # another release's, or damaged: this cycle decides whole


def keep_decided(store: Store, decided: Decided) -> None:
    """Keep this run's decision for the next; its number last, so a decision half kept
    never passes for this run's."""
    text = base64.b64encode(zlib.compress(_ENCODER.encode(decided), 1)).decode()
    store.values.set(_KEY, text)
    store.values.set(_SEQ_KEY, str(store.journal.sequence()))


def carry_decided(store: Store) -> None:
    """A quiet run changed nothing: the decision kept before it stands after it too."""
    now = store.journal.sequence()
    if store.values.get(_SEQ_KEY) == str(now - 1):
        store.values.set(_SEQ_KEY, str(now))


@dataclass(frozen=True, slots=True)
class Again:
    """Who a decision made again was made for."""

    natecosmic: frozenset[str]
    monotree: frozenset[int]


def who_changed(
    before: Decided,
    observation: Observation,
    today: date,
    *,
    delta: PullDelta | None,
    made_from: str | None,
    unchanged: bool,
) -> Again | None:
    """The people to decide again, or None when `before` cannot stand (see above)."""
    if observation.read or observation.pull.rejected or made_from is None:
        return None
    if unchanged:
        if before.made_from != made_from:
            return None
        changed: Set[str] = frozenset()
    else:
        if delta is None or delta.users is None or delta.since != before.made_from:
            return None
        changed = delta.users
    if before.common != common_digest(observation, today):
        return None
    natecosmic, monotree = touched(
        changed=changed,
        users_before=before.users,
        users_now=observation.mappings.users,
        removed_before=before.removed_users,
        removed_now=observation.removed.users,
        written=before.written,
        missing_before=before.missing_users,
        missing_now=observation.missing_users,
    )
    return Again(natecosmic, monotree)


def decided(
    observation: Observation,
    before: Decided | None,
    today: date,
    *,
    scope: Scope,
    chunk_size: int,
    allow_mass_revoke: bool,
    by_person: bool,
    delta: PullDelta | None = None,
    made_from: str | None = None,
    unchanged: bool = False,
) -> tuple[Decision, Again | None]:
    """The cycle's decision: made again for the people who changed, when `before` stands
    for the rest; else whole (by person, to keep, with `by_person`)."""
    again = None
    if before is not None:
        again = who_changed(
            before, observation, today, delta=delta, made_from=made_from, unchanged=unchanged
        )
    if before is not None and again is not None:
        decision = decide_again(
            observation,
            before.standing,
            today,
            natecosmic=again.natecosmic,
            monotree=again.monotree,
            chunk_size=chunk_size,
            allow_mass_revoke=allow_mass_revoke,
        )
        return decision, again
    decision = decide(
        observation,
        scope,
        today,
        chunk_size=chunk_size,
        allow_mass_revoke=allow_mass_revoke,
        by_person=by_person,
    )
    return decision, None


def to_keep(
    decision: Decision, observation: Observation, today: date, made_from: str | None
) -> Decided | None:
    """What to keep of a whole decision for the next cycle (None: nothing to keep)."""
    standing = decision.standing
    if standing is None or made_from is None:
        return None
    return Decided(
        common_digest(observation, today),
        made_from,
        _as_dict(observation.mappings.users),
        _as_dict(observation.removed.users),
        observation.missing_users,
        # Everyone with something to send is decided again next time, sent or not.
        standing.sending,
        standing,
    )


def _as_dict(mapping: Mapping[str, int]) -> dict[str, int]:
    # The mapping itself when it is a dict (20,000 users: not copied at a cycle's peak).
    return mapping if isinstance(mapping, dict) else dict(mapping)
