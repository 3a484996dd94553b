"""Seeded worlds for the sandbox: users, types, records, and the mapping file that fits them."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from certsync.months import add_months
from certsync.sandbox.state import MonotreeUser, SandboxState, Template

VALIDITY_CHOICES = (12, 24, 36)


@dataclass(frozen=True)
class World:
    """What a generator made, so tests and the demo can refer to it."""

    type_ids: list[str]
    type_slugs: list[str]
    template_ids: list[int]
    user_ids: list[str]
    monotree_ids: list[int]
    mapping_toml: str
    unmapped_type: str | None = None
    unmapped_users: list[str] = field(default_factory=list)


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def make_record(
    rng: random.Random,
    *,
    user_id: str,
    type_id: str,
    slug: str,
    issued_on: date,
    validity_months: int | None,
    lifecycle_status: str = "active",
    validity_status: str = "valid",
    verification_status: str = "verified",
) -> dict[str, Any]:
    """A Natecosmic record with every documented field."""
    expires = add_months(issued_on, validity_months) if validity_months else None
    stamp = f"{issued_on.isoformat()}T09:00:00Z"
    return {
        "id": _uuid(rng),
        "organization_id": "5f0c6a4e-0d44-4b50-8888-8dd25736052a",
        "organization_member_id": _uuid(rng),
        "user_id": user_id,
        "external_id": f"EXT-{rng.randrange(10**8):08d}",
        "external_source": "lms",
        "certification_type_id": type_id,
        "lifecycle_status": lifecycle_status,
        "source": "manual",
        "issued_on": issued_on.isoformat(),
        "expires_on": expires.isoformat() if expires else None,
        "issuer_name": "Sandbox Academy",
        "serial_number": f"SN-{rng.randrange(10**10):010d}",
        "verification_status": verification_status,
        "validity_status": validity_status,
        "verification_method": "document",
        "last_verified_at": stamp,
        "created_at": stamp,
        "updated_at": stamp,
        "certification_type": {
            "id": type_id,
            "slug": slug,
            "title": slug.title(),
            "status": "active",
        },
    }


def generate(
    state: SandboxState,
    *,
    users: int,
    types: int,
    seed: int = 1,
    per_user: float = 3.0,
    today: date | None = None,
    email_every: int = 0,
    unmapped_type: bool = False,
    unmapped_user_every: int = 0,
    inactive_share: float = 0.05,
) -> World:
    """Fill `state` with a world of `users` people and `types` certification types.

    Each user holds about `per_user` certifications; `inactive_share` of the
    records are expired or revoked upstream. Every `email_every`-th user is
    mapped by email, every `unmapped_user_every`-th user is left out of the
    mapping file, and `unmapped_type` adds a type the file does not map.
    """
    rng = random.Random(seed)
    today = today or date.today()
    type_ids = [_uuid(rng) for _ in range(types)]
    slugs = [f"cert-type-{k + 1}" for k in range(types)]
    templates = [100 + k for k in range(types)]
    validity = [VALIDITY_CHOICES[k % len(VALIDITY_CHOICES)] for k in range(types)]
    for k, tid in enumerate(templates):
        state.add_template(
            Template(id=tid, title=f"Certificate {k + 1}", validity_months=validity[k])
        )
    user_ids = [_uuid(rng) for _ in range(users)]
    monotree_ids = [1000 + i for i in range(users)]
    for i, mid in enumerate(monotree_ids):
        state.add_user(MonotreeUser(mid, f"User {i}", f"user{i}@example.com"))

    extra_type = _uuid(rng) if unmapped_type else None
    records: list[dict[str, Any]] = []
    k_types = max(1, min(types, round(per_user)))
    for i, user in enumerate(user_ids):
        for k in rng.sample(range(types), k_types):
            issued = today - timedelta(days=rng.randrange(1, 300))
            lifecycle, validity_status = "active", "valid"
            if rng.random() < inactive_share:
                lifecycle, validity_status = rng.choice(
                    [("revoked", "valid"), ("active", "expired")]
                )
            records.append(
                make_record(
                    rng,
                    user_id=user,
                    type_id=type_ids[k],
                    slug=slugs[k],
                    issued_on=issued,
                    validity_months=validity[k],
                    lifecycle_status=lifecycle,
                    validity_status=validity_status,
                )
            )
        if extra_type is not None and i % 7 == 0:
            records.append(
                make_record(
                    rng,
                    user_id=user,
                    type_id=extra_type,
                    slug="not-mapped-yet",
                    issued_on=today - timedelta(days=30),
                    validity_months=12,
                )
            )
    state.records = records

    lines = [
        "# Generated by the certsync sandbox.",
        "[policy]",
        "revoke = true",
        "notify_on_revoke = false",
        "require_verified = false",
        "max_revoke_fraction = 0.2",
        "max_revoke_min = 10",
        "",
    ]
    for k in range(types):
        key = slugs[k] if k % 2 else type_ids[k]
        lines += ["[[types]]", f'natecosmic = "{key}"', f"monotree = {templates[k]}", ""]
    unmapped: list[str] = []
    for i, user in enumerate(user_ids):
        if unmapped_user_every and i % unmapped_user_every == unmapped_user_every - 1:
            unmapped.append(user)
            continue
        lines += ["[[users]]", f'natecosmic = "{user}"']
        if email_every and i % email_every == 0:
            lines += [f'monotree_email = "user{i}@example.com"', ""]
        else:
            lines += [f"monotree = {monotree_ids[i]}", ""]
    return World(
        type_ids=type_ids,
        type_slugs=slugs,
        template_ids=templates,
        user_ids=user_ids,
        monotree_ids=monotree_ids,
        mapping_toml="\n".join(lines),
        unmapped_type=extra_type,
        unmapped_users=unmapped,
    )
