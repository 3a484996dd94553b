"""Who one person is, from any id an operator has at hand: pure, no I/O.

`explain`, `sync --user`, `history --user` and the daemon's `POST /runs` take a
Natecosmic user id, a Monotree user id or an email, and need the person's ids on
both sides.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from certsync.errors import ConfigError
from certsync.models import UserMapping, normal_email


@dataclass(frozen=True, slots=True)
class Person:
    """One person on both sides, as far as the mappings and Monotree's user list know."""

    asked: str
    natecosmic_ids: tuple[str, ...]
    monotree_id: int | None
    # An email mapping Monotree's user list does not resolve yet (an invite pending).
    pending_email: str | None = None

    @property
    def label(self) -> str:
        if self.monotree_id is not None:
            return f"Monotree user {self.monotree_id}"
        return f"Natecosmic user {', '.join(self.natecosmic_ids) or self.asked}"


def find_person(
    asked: str,
    user_mappings: Iterable[UserMapping],
    users_by_email: Mapping[str, int],
) -> Person:
    """Resolve USER: all digits is a Monotree user id, an `@` an email, else a Natecosmic id.

    A person no mapping names is still found by a Monotree id or a known email
    (so an unmapped user can be explained); a Natecosmic id no mapping names is
    found as itself. Raises ConfigError only for an empty USER.
    """
    text = asked.strip()
    if not text:
        raise ConfigError(
            "USER is empty: give a Natecosmic user id, a Monotree user id or an email"
        )
    mappings = list(user_mappings)

    def email_of(m: UserMapping) -> str:
        return normal_email(m.monotree_email) or ""

    def monotree_of(m: UserMapping) -> int | None:
        return m.monotree if m.monotree is not None else users_by_email.get(email_of(m))

    monotree: int | None
    if text.isascii() and text.isdigit() and len(text) < 12:
        monotree = int(text)
        chosen = [m for m in mappings if monotree_of(m) == monotree]
    elif "@" in text:
        email = text.lower()
        monotree = users_by_email.get(email)
        chosen = [
            m
            for m in mappings
            if email_of(m) == email or (monotree is not None and monotree_of(m) == monotree)
        ]
    else:
        chosen = [m for m in mappings if m.natecosmic == text]
        monotree = next((i for i in map(monotree_of, chosen) if i is not None), None)
    natecosmic = tuple(sorted({m.natecosmic for m in chosen}))
    if not natecosmic and monotree is None and "@" not in text:
        natecosmic = (text,)  # a Natecosmic id no mapping names: explained as unmapped
    pending = None
    if monotree is None:
        pending = next((m.monotree_email for m in chosen if m.monotree_email), None)
        if pending is None and "@" in text:
            pending = text
    return Person(text, natecosmic, monotree, pending)
