"""What certsync knows of Monotree, read from the store when a decision first looks:
a decision made again for some people reads theirs alone (`of_users`).

`gather` hands these to the observation in place of the holdings and the ownership it
used to read whole at once (0.3 s at 100,000 holdings): a decision over everyone reads
them whole on first use, as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence, Set

from certsync.models import Holding, Pair
from certsync.pairs import Pairs

ByUser = Mapping[int, Holding]


class KnownHoldings(Mapping[int, ByUser]):
    """Holdings by template: `templates` are its keys before anything is read."""

    def __init__(
        self,
        templates: Sequence[int],
        read_all: Callable[[], dict[int, dict[int, Holding]]],
        read_of: Callable[[Set[int]], dict[int, dict[int, Holding]]],
        fresh: Mapping[int, ByUser],
    ) -> None:
        self._templates = list(dict.fromkeys([*templates, *fresh]))
        self._read_all, self._read_of, self._fresh = read_all, read_of, fresh
        self._all: dict[int, ByUser] | None = None

    def _every(self) -> dict[int, ByUser]:
        if self._all is None:
            found: dict[int, ByUser] = dict(self._read_all())
            found.update(self._fresh)  # read from Monotree in this cycle
            self._all = found
        return self._all

    def of_users(self, users: Set[int]) -> dict[int, ByUser]:
        if self._all is not None:
            return self._all
        found: dict[int, ByUser] = dict(self._read_of(users))
        for cert, by_user in self._fresh.items():
            found[cert] = {u: h for u, h in by_user.items() if u in users}
        return found

    def __getitem__(self, certificate_id: int) -> ByUser:
        return self._every()[certificate_id]

    def __iter__(self) -> Iterator[int]:
        return iter(self._templates)

    def __len__(self) -> int:
        return len(self._templates)


class KnownOwnership(Set[Pair]):
    """What certsync issued, as (certificate, user) pairs."""

    def __init__(self, read_all: Callable[[], Pairs], read_of: Callable[[Set[int]], Pairs]):
        self._read_all, self._read_of = read_all, read_of
        self._all: Pairs | None = None

    def _every(self) -> Pairs:
        if self._all is None:
            self._all = self._read_all()
        return self._all

    def of_users(self, users: Set[int]) -> Pairs:
        return self._all if self._all is not None else self._read_of(users)

    def __contains__(self, pair: object) -> bool:
        return pair in self._every()

    def __iter__(self) -> Iterator[Pair]:
        return iter(self._every())

    def __len__(self) -> int:
        return len(self._every())
