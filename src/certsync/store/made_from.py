"""Which body a kept pull was made from: what a 304, or the same digest, stands for."""

from __future__ import annotations

import json
from dataclasses import dataclass

from certsync import __version__


@dataclass(frozen=True, slots=True)
class MadeFrom:
    """The body a pull came from: its origin (Natecosmic's base URL), the release that
    parsed it (another may parse differently), its SHA-256, and the validators
    Natecosmic gave it (`ETag`, `Last-Modified`), if any."""

    source: str
    digest: str
    etag: str | None = None
    last_modified: str | None = None
    version: str = __version__

    def dumps(self) -> str:
        return json.dumps([self.source, self.version, self.digest, self.etag, self.last_modified])

    @classmethod
    def loads(cls, text: str | None) -> MadeFrom | None:
        try:
            made = json.loads(text or "null")
        except ValueError:
            return None
        if not (isinstance(made, list) and len(made) == 5):
            return None  # none, or a release before digests: nothing to compare with
        source, version, digest, etag, modified = made
        return cls(source, digest, etag, modified, version)

    def same_parser(self, source: str) -> bool:
        """Made by this release from this origin: a body it names may stand for this one."""
        return self.source == source and self.version == __version__
