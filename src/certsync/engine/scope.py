"""What a cycle may touch: everything, some Monotree users, or some templates.

A scope is an input of `decide`: nothing outside it is planned or written, and
the mass-revoke guard counts only the holdings inside it. A sync for one user
(on demand, or after a webhook) is a scope, not a different engine.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Scope:
    """`None` means "every": `Scope()` is the whole tenant."""

    users: frozenset[int] | None = None
    templates: frozenset[int] | None = None

    @classmethod
    def everything(cls) -> Scope:
        return cls()

    @classmethod
    def of_users(cls, user_ids: Iterable[int]) -> Scope:
        return cls(users=frozenset(user_ids))

    @classmethod
    def of_templates(cls, certificate_ids: Iterable[int]) -> Scope:
        return cls(templates=frozenset(certificate_ids))

    @property
    def is_everything(self) -> bool:
        return self.users is None and self.templates is None

    def has_template(self, certificate_id: int) -> bool:
        return self.templates is None or certificate_id in self.templates

    def has(self, certificate_id: int, user_id: int) -> bool:
        """Whether the (certificate, user) pair lies inside the scope."""
        return self.has_template(certificate_id) and (self.users is None or user_id in self.users)
