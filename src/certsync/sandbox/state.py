"""The sandbox's world: Natecosmic records, Monotree users, templates and holdings.

Every API rule of `docs/api-assumptions.md` that certsync relies on is implemented here, in
plain Python, so the apps in `apps.py` stay thin and the rules can be tested
without a server.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

from certsync.months import add_months
from certsync.sandbox.faults import Fault, FaultConfig, RateLimiter, pick
from certsync.sandbox.webhooks import Outbox
from certsync.sandbox.writelog import WriteSeen

MONOTREE_SCOPES = frozenset({"read:certificates", "write:certificates", "read:users"})
NATECOSMIC_SCOPES = frozenset({"certification_records:read"})


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


@dataclass(frozen=True)
class MonotreeUser:
    id: int
    name: str
    email: str
    registered: bool = True
    active: bool = True

    @property
    def listed(self) -> bool:
        """Only registered, active accounts appear in the API."""
        return self.registered and self.active

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "email": self.email,
            "type": "employee",
            "groups": [],
            "hired_at": None,
            "is_away": False,
            "last_active_on": None,
            "registered_at": "2026-01-01T00:00:00+00:00",
            "created_at": "2026-01-01T00:00:00+00:00",
        }


@dataclass
class Template:
    id: int
    title: str
    validity_months: int | None = 12
    description: str | None = None
    reset_days_before_expiry: int | None = None
    certificate_type_id: int | None = None
    is_published: bool = True
    deleted: bool = False
    created_at: datetime = field(default_factory=lambda: datetime(2026, 1, 1, tzinfo=UTC))
    updated_at: datetime = field(default_factory=lambda: datetime(2026, 1, 1, tzinfo=UTC))


@dataclass
class Issuance:
    """One user's certificate: the current issue and any earlier ones."""

    issued_at: datetime
    expires_at: datetime | None
    history: list[dict[str, Any]] = field(default_factory=list)
    completion_reset: bool = False
    via_api: bool = False

    def is_expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


class SandboxState:
    """Both simulated APIs' data and counters, behind one lock."""

    def __init__(
        self,
        *,
        natecosmic_token: str = "nc_sandbox_token",
        monotree_token: str = "mono_sandbox_token",
        rate_limit: int | None = 60,
        faults: FaultConfig | None = None,
    ) -> None:
        self.lock = threading.RLock()
        self.tokens: dict[str, dict[str, frozenset[str]]] = {
            "natecosmic": {natecosmic_token: NATECOSMIC_SCOPES},
            "monotree": {monotree_token: MONOTREE_SCOPES},
        }
        self.natecosmic_token = natecosmic_token
        self.monotree_token = monotree_token
        self.records: list[dict[str, Any]] = []
        self.natecosmic_body: bytes | None = None  # a raw body to serve instead (HTML, truncated)
        self.etags = True  # the pull carries an ETag and answers If-None-Match with a 304
        # ... and a Last-Modified (the second its body last changed): If-Modified-Since.
        self.last_modified = True
        self._pull_seen: tuple[str, float] = ("", 0.0)
        self.users: dict[int, MonotreeUser] = {}
        self.templates: dict[int, Template] = {}
        self.issuances: dict[tuple[int, int], Issuance] = {}
        # Indexes of the same Issuance objects, so a page of holders or a user's
        # certificates costs what the page holds, not the whole world.
        self.by_cert: dict[int, dict[int, Issuance]] = {}
        self.by_user: dict[int, dict[int, Issuance]] = {}
        # Listed holders of each template in user-id order, dropped whenever an
        # issuance or a user changes: a page of holders must not scan the template.
        self._holder_order: dict[int, list[int]] = {}
        # With `cache_pull`, the certifications body is serialised once per
        # `records_changed()`; the benchmark turns it on, tests edit records freely.
        self.cache_pull = False
        self._pull_cache: bytes | None = None
        self.notified: Counter[int] = Counter()
        self.limiter = RateLimiter(rate_limit)
        self.faults = faults or FaultConfig()
        self.rng = random.Random(self.faults.seed)
        self.scripted: list[Fault] = []
        self.outbox = Outbox()  # outgoing webhooks (sandbox/webhooks.py)
        self.counts: Counter[str] = Counter()
        self.statuses: Counter[str] = Counter()
        # When a list: every write request that reached a handler, in order, with the
        # token that sent it (the failover tests give each replica its own) and when
        # (time.monotonic). Off by default: the benchmark writes 100,000 pairs.
        self.writes: list[WriteSeen] | None = None
        self.clock: Any = lambda: datetime.now(UTC)

    # --- set-up helpers (tests, demo, generator) -------------------------------

    def set_faults(self, faults: FaultConfig) -> None:
        with self.lock:
            self.faults = faults
            self.rng = random.Random(faults.seed)

    def script(self, fault: Fault) -> None:
        with self.lock:
            self.scripted.append(fault)

    def add_user(self, user: MonotreeUser) -> None:
        with self.lock:
            self.users[user.id] = user
            self._holder_order.clear()

    def update_user(self, user_id: int, **changes: Any) -> None:
        """Change a user as Monotree's app would (deactivate, unregister, rename)."""
        with self.lock:
            self.users[user_id] = replace(self.users[user_id], **changes)
            self._holder_order.clear()

    def add_template(self, template: Template) -> None:
        with self.lock:
            self.templates[template.id] = template

    def issue(self, certificate_id: int, user_id: int, on: date) -> None:
        """Issue directly, as if by hand in Monotree's app (not through the API)."""
        with self.lock:
            self._issue(certificate_id, user_id, on)

    def unassign(self, certificate_id: int, user_id: int) -> None:
        """Take a certificate away by hand in Monotree's app: it expires now."""
        with self.lock:
            self.issuances[(certificate_id, user_id)].expires_at = self.clock()

    def _issue(self, certificate_id: int, user_id: int, on: date, *, via_api: bool = False) -> None:
        template = self.templates[certificate_id]
        issued = datetime(on.year, on.month, on.day, tzinfo=UTC)
        expires = (
            add_months(issued, template.validity_months)
            if template.validity_months is not None
            else None
        )
        previous = self.issuances.get((certificate_id, user_id))
        history = []
        if previous is not None:
            history = [
                *previous.history,
                {"issued_at": iso(previous.issued_at), "expires_at": iso(previous.expires_at)},
            ]
        issuance = Issuance(issued, expires, history, via_api=via_api)
        self.issuances[(certificate_id, user_id)] = issuance
        if user_id not in self.by_cert.setdefault(certificate_id, {}):
            self._holder_order.pop(certificate_id, None)
        self.by_cert[certificate_id][user_id] = issuance
        self.by_user.setdefault(user_id, {})[certificate_id] = issuance

    def active_pairs(self) -> dict[tuple[int, int], date]:
        """(certificate, user) -> issue date of every active holding: what a test asserts on."""
        now = self.clock()
        with self.lock:
            return {
                pair: i.issued_at.date()
                for pair, i in self.issuances.items()
                if not i.is_expired(now) and not self.templates[pair[0]].deleted
            }

    def api_issued_active(self) -> set[tuple[int, int]]:
        """Active holdings that came through the API's assign, i.e. that certsync issued."""
        now = self.clock()
        with self.lock:
            return {p for p, i in self.issuances.items() if i.via_api and not i.is_expired(now)}

    def count(self, api: str | None = None, method: str | None = None) -> int:
        with self.lock:
            return sum(
                n
                for key, n in self.counts.items()
                if (api is None or key.split(" ")[0] == api)
                and (method is None or key.split(" ")[1] == method)
            )

    def reset_counts(self) -> None:
        with self.lock:
            self.counts.clear()
            self.statuses.clear()

    # --- faults -------------------------------------------------------------------

    def pick_fault(self, api: str, method: str, path: str) -> Fault | None:
        with self.lock:
            return pick(self.faults, self.scripted, self.rng, api=api, method=method, path=path)

    # --- Monotree rules -------------------------------------------------------------

    def template_json(self, t: Template) -> dict[str, Any]:
        now = self.clock()
        active = sum(1 for i in self.by_cert.get(t.id, {}).values() if not i.is_expired(now))
        ctype = (
            {
                "id": t.certificate_type_id,
                "title": "Compliance",
                "is_published": True,
                "published_at": iso(t.created_at),
                "created_at": iso(t.created_at),
                "updated_at": iso(t.created_at),
            }
            if t.certificate_type_id
            else None
        )
        return {
            "id": t.id,
            "title": t.title,
            "description": t.description,
            "validity_months": t.validity_months,
            "reset_days_before_expiry": t.reset_days_before_expiry,
            "active_users_count": active,
            "is_published": t.is_published,
            "certificate_type": ctype,
            "published_at": iso(t.created_at) if t.is_published else None,
            "created_at": iso(t.created_at),
            "updated_at": iso(t.updated_at),
        }

    def user_state(self, issuance: Issuance) -> dict[str, Any]:
        return {
            "has_certificate": True,
            "issued_at": iso(issuance.issued_at),
            "expires_at": iso(issuance.expires_at),
            "is_expired": issuance.is_expired(self.clock()),
            "completables": [] if issuance.completion_reset else [{"type": "course", "done": True}],
            "history": list(issuance.history),
        }

    def live_template(self, certificate_id: int) -> Template | None:
        t = self.templates.get(certificate_id)
        return None if t is None or t.deleted else t

    def holders(self, certificate_id: int) -> list[int]:
        """The listed users with an issuance of this certificate, ordered by user id."""
        order = self._holder_order.get(certificate_id)
        if order is None:
            order = [
                u
                for u in sorted(self.by_cert.get(certificate_id, {}))
                if (user := self.users.get(u)) is not None and user.listed
            ]
            self._holder_order[certificate_id] = order
        return order

    def holder_items(self, certificate_id: int, user_ids: list[int]) -> list[dict[str, Any]]:
        """Holder items: the user object plus `user_state`."""
        by_user = self.by_cert.get(certificate_id, {})
        return [
            {**self.users[u].as_json(), "user_state": self.user_state(by_user[u])} for u in user_ids
        ]

    def records_changed(self) -> None:
        self._pull_cache = None

    def pull_body(self) -> bytes:
        if self.cache_pull and self._pull_cache is not None:
            return self._pull_cache
        body = json.dumps({"data": self.records}).encode()
        if self.cache_pull:
            self._pull_cache = body
        return body

    def pull_changed(self, tag: str) -> float:
        """When the pull's body (named by `tag`) last changed, as a server keeps it."""
        if self._pull_seen[0] != tag:
            self._pull_seen = (tag, time.time())
        return self._pull_seen[1]

    def saw_write(self, token: str, kind: str, pairs: Iterable[tuple[int, int]]) -> None:
        if self.writes is not None:
            self.writes.append(WriteSeen(token, kind, frozenset(pairs), time.monotonic()))

    def assign(self, payload: Any) -> tuple[int, dict[str, Any] | None]:
        """Validate the whole body first (Laravel-style 422), then issue; skip active holders."""
        errors: dict[str, list[str]] = {}
        assignments = payload.get("assignments") if isinstance(payload, dict) else None
        if not isinstance(assignments, list) or not assignments:
            return 422, _invalid({"assignments": ["The assignments field is required."]})
        for a_index, a in enumerate(assignments):
            cert = a.get("certificate_id") if isinstance(a, dict) else None
            if not isinstance(cert, int) or self.live_template(cert) is None:
                errors[f"assignments.{a_index}.certificate_id"] = [
                    "The selected certificate id is invalid."
                ]
            users = a.get("users") if isinstance(a, dict) else None
            if not isinstance(users, list) or not users:
                errors[f"assignments.{a_index}.users"] = ["The users field is required."]
                continue
            for u_index, u in enumerate(users):
                where = f"assignments.{a_index}.users.{u_index}"
                uid = u.get("user_id") if isinstance(u, dict) else None
                user = self.users.get(uid) if isinstance(uid, int) else None
                if user is None or not user.listed:
                    errors[f"{where}.user_id"] = ["The selected user id is invalid."]
                try:
                    date.fromisoformat(str(u.get("completed_at")))
                except (ValueError, AttributeError):
                    errors[f"{where}.completed_at"] = ["The completed at is not a valid date."]
        if errors:
            return 422, _invalid(errors)
        now = self.clock()
        for a in assignments:
            for u in a["users"]:
                current = self.issuances.get((a["certificate_id"], u["user_id"]))
                if current is not None and not current.is_expired(now):
                    continue
                completed = date.fromisoformat(u["completed_at"])
                self._issue(a["certificate_id"], u["user_id"], completed, via_api=True)
        return 204, None

    def reset(self, certificate_id: int, payload: Any) -> tuple[int, dict[str, Any] | None]:
        if self.live_template(certificate_id) is None:
            return 404, {"message": "Not found."}
        payload = payload if isinstance(payload, dict) else {}
        user_ids = payload.get("user_ids")
        if user_ids is not None and (
            not isinstance(user_ids, list) or not all(isinstance(u, int) for u in user_ids)
        ):
            return 422, _invalid({"user_ids": ["The user ids must be an array of integers."]})
        expire = bool(payload.get("expire", False))
        notify = bool(payload.get("notify", False))
        now = self.clock()
        targets = list(self.by_cert.get(certificate_id, {})) if user_ids is None else user_ids
        for uid in targets:
            issuance = self.issuances.get((certificate_id, uid))
            if issuance is None:
                continue
            issuance.completion_reset = True
            if expire:
                if issuance.expires_at is None or issuance.expires_at > now:
                    issuance.expires_at = now
                if notify:
                    self.notified[uid] += 1
        return 204, None


def _invalid(errors: dict[str, list[str]]) -> dict[str, Any]:
    return {"message": "The given data was invalid.", "errors": errors}
