"""Where an API token comes from: the settings that may supply it, in order.

A source to read, not a value to keep: `clients.credentials` reads it again
before every cycle and after a 401. Every error names the setting to fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from certsync.errors import ConfigError


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
