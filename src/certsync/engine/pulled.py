"""The pull of a cycle: Natecosmic's body, asked for with the kept snapshot's validators,
and decoded on first use: against the kept pull when it can be (only what changed is
decoded), else whole.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from certsync.clients.conditional import Validators
from certsync.clients.natecosmic import decode_pull
from certsync.clients.prints import scan
from certsync.clients.session import Clients
from certsync.errors import ResponseFormatError
from certsync.models import Pull
from certsync.store import MadeFrom, Store
from certsync.store.known import Merged, merged

log = structlog.get_logger("certsync.engine.pulled")


class Pulled:
    """The pull, and the body it came from. `unchanged` when that body is the one the
    kept snapshot was made from: Natecosmic answered 304 to its validators, or sent the
    same bytes again (the same SHA-256). `pull` decodes on first use, from the body, or
    for a 304 from the snapshot, so a cycle that learns it has nothing to decide from
    decodes nothing. `close` lets the body go."""

    def __init__(self, made_from: MadeFrom, *, unchanged: bool, decode: Callable[[], Pull]):
        self.made_from = made_from
        self.unchanged = unchanged
        self._decode: Callable[[], Pull] | None = decode
        self._pull: Pull | None = None
        self.close: Callable[[], None] = lambda: None
        # Made of the kept pull and the records that changed (`store/known.py`): its
        # rows and what changed are known already, for the snapshot.
        self.merged: Merged | None = None

    @classmethod
    def of(cls, pull: Pull, made_from: MadeFrom) -> Pulled:
        """A pull already decoded."""
        return cls(made_from, unchanged=False, decode=lambda: pull)

    def forget_prints(self) -> None:
        if self._pull is not None and self._pull.prints:
            self._pull = Pull(self._pull.records, self._pull.rejected)

    @property
    def pull(self) -> Pull:
        if self._pull is None:
            assert self._decode is not None
            try:
                self._pull = self._decode()
            finally:
                self.close()
            self._decode = None
        return self._pull


def pull_certifications(
    store: Store, clients: Clients, *, conditional: bool = True, printed: bool = True
) -> Pulled:
    """Natecosmic's list, asked for with the validators of the body the kept snapshot was
    made from, when this release made it from the same Natecosmic. Without `conditional`
    (a full cycle), asked for whole: a server that wrongly answers 304 is then caught at
    the next full cycle at the latest, and the same bytes are still not decoded twice.
    With `printed`, a body decoded whole keeps its records' prints (for the snapshot)."""
    source = clients.natecosmic.base_url
    kept = store.snapshots.made_from()
    kept = kept if kept is not None and kept.same_parser(source) else None
    asked = None if kept is None or not conditional else Validators(kept.etag, kept.last_modified)
    fetched = clients.natecosmic.fetch_certifications(asked)
    body = fetched.body
    if body is None:
        assert kept is not None  # the HTTP layer refuses a 304 to a request without one

        def from_snapshot() -> Pull:
            again = store.snapshots.load()
            if again is None or again.made_from != kept:
                raise ResponseFormatError(
                    "natecosmic", "the kept pull changed while the cycle read it"
                )
            return Pull(again.records, again.rejected)

        return Pulled(kept, unchanged=True, decode=from_snapshot)
    answered = fetched.validators
    made_from = MadeFrom(source, body.digest, answered.etag, answered.last_modified)

    def decode() -> Pull:
        # Against the kept pull, when this release made it from the same Natecosmic:
        # only the records whose bytes changed are decoded (`clients/prints.py`).
        known = store.snapshots.known() if kept is not None else None
        if known is not None:
            scanned = scan(body.chunks(), known.by_print())
            if scanned is not None:
                pulled.merged = merged(known, scanned.kept, scanned.fresh)
                return Pull(pulled.merged.records, (), scanned.prints)
            log.info(
                "pull.decoded_whole", reason="the fast decoder cannot read it against the kept pull"
            )
        return decode_pull(body, printed=printed)

    pulled = Pulled(
        made_from,
        # The same bytes with other validators are kept again, to be asked with those.
        unchanged=made_from == kept,
        decode=decode,
    )
    pulled.close = body.close
    return pulled
