"""Why one person has (or lacks) each certificate, and what the next sync would do: pure.

`explain` takes what was read for one person (their records, their Monotree
certificates, the store's ownership) and the decision `decide` makes for them,
and says, per Natecosmic record and per Monotree holding, which rule applied.
The reasons come from the same plan a sync makes, never from a second copy of
its rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from certsync.actions import Plan
from certsync.engine.decide import decide
from certsync.engine.observation import Observation
from certsync.engine.plan import not_held_because
from certsync.engine.scope import Scope
from certsync.models import CertificationRecord, Holding, Ownership
from certsync.people import Person


@dataclass(frozen=True, slots=True)
class RecordLine:
    """One Natecosmic record of the person."""

    record_id: str
    type_key: str
    type_title: str | None
    issued_on: date
    expires_on: date | None
    template_id: int | None
    mapping: str  # the mapping used, or why there is none
    held: bool
    not_held: str | None  # the field that says so
    next_sync: str  # what the next sync does for it, and why


@dataclass(frozen=True, slots=True)
class HoldingLine:
    """One certificate Monotree holds (or held) for the person."""

    template_id: int
    title: str | None
    active: bool
    issued_on: date | None
    expires_on: date | None
    owned: bool
    owned_since: date | None
    owned_by_run: str | None
    next_sync: str


@dataclass(frozen=True, slots=True)
class Explanation:
    person: Person
    records: tuple[RecordLine, ...]
    holdings: tuple[HoldingLine, ...]
    notes: tuple[str, ...]
    # What the next sync would send for this person: assign, renew, revoke counts.
    actions: Mapping[str, int]


def explain(
    person: Person,
    observation: Observation,
    ownership: Mapping[int, Ownership],
    today: date,
    *,
    guarded: Plan | None = None,
) -> Explanation:
    """`observation` holds the pull, this person's certificates (as `holdings`), the
    template list and the mappings; `guarded` is the next sync's plan for everyone,
    which alone says whether the mass-revoke guard would hold revocations back."""
    uid = person.monotree_id
    scope = Scope.of_users([uid] if uid is not None else [])
    plan = decide(observation, scope, today, chunk_size=50).plan
    records = [r for r in observation.pull.records if r.user_id in person.natecosmic_ids]
    titles = {c: t.title for c, t in observation.templates.items()}
    notes = list(_notes(person, observation))

    why = _Why(observation, uid, plan, guarded, titles, records, today)
    record_lines = [why.record_line(r) for r in records]
    held: dict[int, Holding] = {}
    if uid is not None:
        for cert, by_user in observation.holdings.items():
            if uid in by_user:
                held[cert] = by_user[uid]
    desired = {line.template_id for line in record_lines if line.held and line.template_id}
    holding_lines = [
        why.holding_line(held[c], ownership.get(c), desired=c in desired) for c in sorted(held)
    ]
    held_back = {r.certificate_id for r in plan.held_back_revokes}
    if guarded is not None and uid is not None:
        held_back |= {r.certificate_id for r in guarded.held_back_revokes if r.user_id == uid}
    actions = {
        "assign": len(plan.assigns),
        "renew": len(plan.renewals),
        "revoke": len([r for r in plan.revokes if r.certificate_id not in held_back]),
        "held_back": len(held_back),
    }
    return Explanation(person, tuple(record_lines), tuple(holding_lines), tuple(notes), actions)


def _notes(person: Person, observation: Observation) -> list[str]:
    notes = []
    if person.monotree_id is None:
        if person.pending_email:
            notes.append(
                f"{person.pending_email} is not a registered Monotree user yet (invite "
                "pending): nothing is assigned until they register"
            )
        else:
            notes.append("no user mapping names a Monotree user for this person")
    elif person.monotree_id in observation.missing_users:
        notes.append(
            f"Monotree has no user {person.monotree_id} (deactivated, deleted, or an invite "
            "still pending): nothing is assigned to them"
        )
    if not person.natecosmic_ids:
        notes.append("no user mapping names this Monotree user: certsync keeps no record of theirs")
    return notes


def _type_key(record: CertificationRecord) -> str:
    keys = record.type_keys()
    return keys[-1] if keys else "(none)"


@dataclass(frozen=True)
class _Why:
    """What every reason is read from: the observation, this person's plan, the guard's."""

    observation: Observation
    uid: int | None
    plan: Plan
    guarded: Plan | None
    titles: Mapping[int, str]
    same_person: list[CertificationRecord]
    today: date

    def record_line(self, record: CertificationRecord) -> RecordLine:
        mappings = self.observation.mappings
        removed = self.observation.removed
        keys = record.type_keys()
        mapped = next((mappings.types[k] for k in keys if k in mappings.types), None)
        reason = not_held_because(record, mappings.policy, self.today)
        line = RecordLine(
            record_id=record.id,
            type_key=_type_key(record),
            type_title=record.certification_type.title if record.certification_type else None,
            issued_on=record.issued_on,
            expires_on=record.expires_on,
            template_id=None,
            mapping="",
            held=reason is None,
            not_held=reason,
            next_sync="",
        )
        if mapped is None:
            gone = next((removed.types[k] for k in keys if k in removed.types), None)
            mapping = (
                f"its [[types]] mapping (to template {gone.monotree}) was removed"
                if gone is not None
                else f"no [[types]] entry maps {' or '.join(repr(k) for k in keys) or 'its type'}"
            )
            return replace(line, mapping=mapping, next_sync="nothing: unmapped type")
        cert = mapped.monotree
        named = self.titles.get(cert)
        mapping = f"{mapped.natecosmic} -> template {cert}" + (f" ({named!r})" if named else "")
        if cert in self.observation.missing_templates:
            verdict = (
                f"nothing: template {cert} does not exist in Monotree (deleted?); fix the mapping"
            )
        else:
            verdict = self._record_verdict(record, cert, reason)
        return replace(line, template_id=cert, mapping=mapping, next_sync=verdict)

    def _record_verdict(self, record: CertificationRecord, cert: int, reason: str | None) -> str:
        uid, plan = self.uid, self.plan
        if reason is not None:
            return "nothing to assign: not held in Natecosmic"
        if uid is None:
            return "nothing: the person has no Monotree user yet"
        if uid in self.observation.missing_users:
            return f"nothing: Monotree has no user {uid}"
        pair = (cert, uid)
        for a in plan.assigns:
            if (a.certificate_id, a.user_id) == pair and a.record_id == record.id:
                return f"assign, issued {a.completed_at}: Monotree does not hold it"
        for n in plan.renewals:
            if (n.certificate_id, n.user_id) == pair and n.record_id == record.id:
                return (
                    f"renew (reset, then assign issued {n.completed_at}): Monotree holds the "
                    f"older issue of {n.previous_issued_on}"
                )
        for k in plan.kept_newer:
            if (k.certificate_id, k.user_id) == pair:
                return (
                    f"nothing: Monotree holds a newer issue ({k.monotree_issued_on}), "
                    "never downgraded"
                )
        for d in plan.drift:
            if (d.certificate_id, d.user_id) == pair:
                return (
                    f"nothing: held; expiry differs (Monotree {d.monotree_expires_on}, "
                    f"Natecosmic {d.natecosmic_expires_on}), reported as drift"
                )
        later = [
            r
            for r in self.same_person
            if r.id != record.id
            and set(r.type_keys()) & set(record.type_keys())
            and (r.issued_on, r.id) > (record.issued_on, record.id)
        ]
        if later:
            return f"nothing: a later record of the same type ({later[0].id}) is the one synced"
        return "nothing: Monotree already holds this issue"

    def holding_line(
        self, holding: Holding, owned: Ownership | None, *, desired: bool
    ) -> HoldingLine:
        return HoldingLine(
            template_id=holding.certificate_id,
            title=self.titles.get(holding.certificate_id),
            active=holding.active,
            issued_on=holding.issued_on,
            expires_on=holding.expires_on,
            owned=owned is not None,
            owned_since=owned.issued_on if owned else None,
            owned_by_run=owned.run_id if owned else None,
            next_sync=self._holding_verdict(holding, owned, desired=desired),
        )

    def _holding_verdict(self, holding: Holding, owned: Ownership | None, *, desired: bool) -> str:
        cert, plan, mappings = holding.certificate_id, self.plan, self.observation.mappings
        pair = (cert, self.uid)

        def among(items: tuple[Any, ...]) -> bool:
            return any((i.certificate_id, i.user_id) == pair for i in items)

        if not holding.active:
            again = "; assigned again if Natecosmic holds it" if desired else ""
            return f"nothing: expired in Monotree{again}"
        if among(plan.revokes):
            guarded = self.guarded
            if guarded is not None and among(guarded.held_back_revokes):
                return f"held back: {guarded.held_back_reason}"
            return "revoke: Natecosmic no longer holds it"
        if among(plan.held_back_revokes):
            return f"held back: {plan.held_back_reason}"
        if among(plan.unmanaged):
            return "kept, unmanaged: its type or user mapping was removed (revoke_unmapped is off)"
        if among(plan.renewals):
            return "renew: Natecosmic holds a newer issue"
        if desired:
            return "keep: Natecosmic holds it"
        if cert not in mappings.template_ids():
            if owned is None:
                return "not certsync's: no mapping names this template"
            return "kept: certsync issued it, but the template's mapping is gone"
        if owned is None and cert not in mappings.authoritative_templates():
            return "left alone: certsync did not issue it and the template is not authoritative"
        return "keep"
