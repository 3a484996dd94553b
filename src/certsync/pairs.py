"""(certificate, user) pairs kept as one set of users per certificate.

certsync's ownership is 100,000 pairs in a large tenant: as a set of tuples it
costs a tuple each (56 bytes) beside the set itself, 10 MB in all; grouped by
certificate, with the user ids the rows already hold, it costs the sets alone.
It reads as any set of pairs (`in`, iteration, `len`, equality)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Set
from typing import TypeVar

from certsync.models import Pair

_NONE: frozenset[int] = frozenset()
_T = TypeVar("_T")


class Pairs(Set[Pair]):
    """An immutable set of (certificate, user) pairs, grouped by certificate."""

    __slots__ = ("_by_certificate", "_size")

    def __init__(self, by_certificate: Mapping[int, Set[int]] | None = None) -> None:
        """The sets are handed over, not copied (100,000 users): nobody else changes them."""
        self._by_certificate = {c: users for c, users in (by_certificate or {}).items() if users}
        self._size = sum(len(users) for users in self._by_certificate.values())

    @classmethod
    def of(cls, pairs: Iterable[Pair]) -> Pairs:
        if isinstance(pairs, Pairs):
            return pairs
        grouped: dict[int, set[int]] = {}
        for cert, user in pairs:
            grouped.setdefault(cert, set()).add(user)
        return cls(grouped)

    @classmethod
    def _from_iterable(cls, items: Iterable[_T]) -> frozenset[_T]:
        return frozenset(items)  # what &, |, - and ^ make: a plain set

    def users_of(self, certificate_id: int) -> Set[int]:
        return self._by_certificate.get(certificate_id, _NONE)

    def __contains__(self, pair: object) -> bool:
        if not isinstance(pair, tuple) or len(pair) != 2:
            return False
        users = self._by_certificate.get(pair[0])
        return users is not None and pair[1] in users

    def __iter__(self) -> Iterator[Pair]:
        for cert, users in self._by_certificate.items():
            for user in users:
                yield cert, user

    def __len__(self) -> int:
        return self._size

    def __hash__(self) -> int:
        return self._hash()

    def __repr__(self) -> str:
        return f"Pairs({sorted(self)!r})"
