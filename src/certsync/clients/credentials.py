"""Where each API token comes from, read again before every cycle and after a 401.

Kubernetes updates a mounted Secret in place, so a token file is a source to
read, not a value to keep: a rotated token is picked up by the next cycle (or
by the retry that follows a 401) with no restart. Every error names the
setting that supplied the token, so the operator knows which one to fix.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from certsync.errors import ConfigError
from certsync.redaction import Redactor


@dataclass(frozen=True, slots=True)
class TokenSource:
    """The places a token may come from, in the order they are tried."""

    api: str
    env_token: SecretStr | None
    token_file: Path | None
    secrets_file: Path

    @property
    def env_name(self) -> str:
        return f"CERTSYNC_{self.api.upper()}__TOKEN"

    def describe(self) -> str:
        """The setting that supplies the token now, as an operator would look for it."""
        if self.env_token is not None and self.env_token.get_secret_value():
            return self.env_name
        if self.token_file is not None:
            return f"{self.env_name}_FILE ({self.token_file})"
        return f"the secrets file {self.secrets_file}"

    def missing(self) -> str:
        return (
            f"{self.env_name} is required (or {self.env_name}_FILE, or a file {self.secrets_file})"
        )

    def read(self) -> str:
        """The token as it is now; a ConfigError naming the setting if there is none."""
        if self.env_token is not None and self.env_token.get_secret_value():
            return self.env_token.get_secret_value()
        if self.token_file is not None:
            return _read_file(self.token_file, f"{self.env_name}_FILE")
        if self.secrets_file.is_file():
            return _read_file(self.secrets_file, "the secrets file")
        raise ConfigError(self.missing())


def _read_file(path: Path, source: str) -> str:
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read {path}: {exc.strerror}") from None
    if not value:
        raise ConfigError(f"{source}: {path} is empty")
    return value


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
