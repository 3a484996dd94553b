"""Where each API token comes from, read again before every cycle and after a 401.

Kubernetes updates a mounted Secret in place, so a token file is a source to
read, not a value to keep: a rotated token is picked up by the next cycle (or
by the retry that follows a 401) with no restart. Every error names the
setting that supplied the token, so the operator knows which one to fix.
"""

from __future__ import annotations

import threading
from pathlib import Path

from pydantic import SecretStr

from certsync.redaction import Redactor
from certsync.tokens import TokenSource

__all__ = ["Credential", "TokenSource"]


class Credential:
    """One API's current token: re-read on demand, registered with the redactor."""

    def __init__(self, source: TokenSource, redactor: Redactor) -> None:
        self.source = source
        self._redactor = redactor
        self._lock = threading.Lock()
        # Read on first use, not here: a daemon starts (and reports not ready) even
        # while its Secret is not mounted yet.
        self._token: str | None = None

    @classmethod
    def fixed(cls, api: str, token: str, redactor: Redactor) -> Credential:
        """A token given as a value (tests, the demo): nothing to re-read."""
        source = TokenSource(api, SecretStr(token), None, Path("/nonexistent"))
        return cls(source, redactor)

    def _load(self) -> str:
        token = self.source.read()
        self._redactor.add(token)
        return token

    @property
    def token(self) -> str:
        with self._lock:
            if self._token is None:
                self._token = self._load()
            return self._token

    def reload(self) -> bool:
        """Read the source again; True when the token changed (a rotation happened)."""
        fresh = self._load()
        with self._lock:
            changed = self._token is not None and fresh != self._token
            self._token = fresh
        return changed

    def describe(self) -> str:
        return self.source.describe()

    def redact(self, text: str) -> str:
        """`text` without any token this credential (or its siblings) ever read."""
        return self._redactor(text)
