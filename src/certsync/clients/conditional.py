"""A conditional GET: the validators a server gave a body, and that body kept aside.

A large list is read once into a spooled file while it is hashed, so a cycle
can learn that the body is byte for byte the one it last decoded without
decoding it, and decode it from the file (never holding it whole) otherwise.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import IO, Self

import httpx

# A large pull (88 MB at 100,000 records) must not be held in memory whole while it
# is hashed; a small one is not worth a file.
_IN_MEMORY = 4 << 20
_READ = 1 << 20


@dataclass(frozen=True, slots=True)
class Validators:
    """What a server said identifies a body: its `ETag` and `Last-Modified`, sent back as
    `If-None-Match` and `If-Modified-Since` so that an unchanged body is answered 304."""

    etag: str | None = None
    last_modified: str | None = None

    @classmethod
    def of(cls, headers: httpx.Headers) -> Self:
        etag = headers.get("etag")
        # A weak ETag promises an equivalent body, not the same bytes: not kept.
        strong = etag if etag and not etag.startswith("W/") else None
        return cls(strong, _strong_date(headers.get("last-modified"), headers.get("date")))

    def headers(self) -> dict[str, str]:
        # A strong ETag names the very bytes; a date is the weaker promise (a list's
        # Last-Modified may well be its newest record's, which a deletion leaves as it
        # was), so it is sent only when there is no ETag to send.
        if self.etag:
            return {"If-None-Match": self.etag}
        if self.last_modified:
            return {"If-Modified-Since": self.last_modified}
        return {}

    def __bool__(self) -> bool:
        return bool(self.etag or self.last_modified)


def _strong_date(modified: str | None, answered: str | None) -> str | None:
    """`Last-Modified`, when it can tell two bodies apart: a body changed again within
    the same second keeps the same date, so (as RFC 9110 has it) only a date at least a
    second before the answer's `Date` is kept, and none without a `Date`."""
    if not (modified and answered):
        return None
    try:
        age = parsedate_to_datetime(answered) - parsedate_to_datetime(modified)
    except (TypeError, ValueError):
        return None  # a date that does not parse validates nothing
    return modified if age.total_seconds() >= 1 else None


class Body:
    """A response body kept aside, with its length and SHA-256 digest."""

    def __init__(self, file: IO[bytes], digest: str, size: int) -> None:
        self._file = file
        self.digest = digest
        self.size = size

    @classmethod
    def read(cls, chunks: Iterable[bytes]) -> Body:
        file = tempfile.SpooledTemporaryFile(max_size=_IN_MEMORY)  # noqa: SIM115 - Body owns it
        hasher = hashlib.sha256()
        size = 0
        try:
            for chunk in chunks:
                hasher.update(chunk)
                file.write(chunk)
                size += len(chunk)
        except BaseException:
            file.close()
            raise
        return cls(file, hasher.hexdigest(), size)

    def chunks(self) -> Iterator[bytes]:
        """The body again, from its first byte, a megabyte at a time."""
        self._file.seek(0)
        while chunk := self._file.read(_READ):
            yield chunk

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
