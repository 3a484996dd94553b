"""Settings from the environment (prefix `CERTSYNC_`, nesting `__`), built once and passed down.

Tokens are `SecretStr` and may also come from a `*_TOKEN_FILE` variable or a
secrets directory (`/run/secrets/natecosmic_token`, `/run/secrets/monotree_token`),
which is how Docker and Kubernetes hand secrets over without putting them in
the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from certsync.errors import ConfigError

ENV_PREFIX = "CERTSYNC_"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ApiSettings(_Section):
    base_url: str | None = None
    token: SecretStr | None = None
    token_file: Path | None = None
    verify_tls: bool = True
    # Optional client-side cap, below whatever the server allows.
    max_requests_per_minute: int | None = Field(default=None, gt=0)

    @field_validator("base_url")
    @classmethod
    def _origin(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value


class NatecosmicSettings(ApiSettings):
    base_url: str | None = "https://api.natecosmic.com"


class MonotreeSettings(ApiSettings):
    pass


class ClientSettings(_Section):
    connect_timeout: float = Field(default=5.0, gt=0)
    read_timeout: float = Field(default=30.0, gt=0)
    write_timeout: float = Field(default=30.0, gt=0)
    pool_timeout: float = Field(default=10.0, gt=0)
    max_attempts: int = Field(default=5, ge=1, le=20)
    max_retry_seconds: float = Field(default=120.0, gt=0)
    backoff_base: float = Field(default=0.5, ge=0)
    backoff_max: float = Field(default=30.0, ge=0)
    concurrency: int = Field(default=4, ge=1, le=32)
    max_response_bytes: int = Field(default=256 * 1024 * 1024, ge=1024)


class SyncSettings(_Section):
    chunk_size: int = Field(default=500, ge=1)
    lock_timeout: float = Field(default=30.0, ge=0)


class ScheduleSettings(_Section):
    interval: float = Field(default=900.0, gt=0)
    cron: str | None = None
    full_every: float = Field(default=86400.0, gt=0)
    jitter: float = Field(default=0.0, ge=0)
    max_backoff: float = Field(default=3600.0, gt=0)
    stop_timeout: float = Field(default=30.0, gt=0)


class HttpListenerSettings(_Section):
    host: str = "0.0.0.0"  # noqa: S104 - a container's health port must be reachable
    port: int = Field(default=8080, ge=0, le=65535)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="ignore",
        frozen=True,
    )

    natecosmic: NatecosmicSettings = NatecosmicSettings()
    monotree: MonotreeSettings = MonotreeSettings()
    database_url: str = "sqlite:///certsync.db"
    mappings_file: Path | None = Path("config/mappings.toml")
    secrets_dir: Path = Path("/run/secrets")
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    client: ClientSettings = ClientSettings()
    sync: SyncSettings = SyncSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    http: HttpListenerSettings = HttpListenerSettings()

    @field_validator("mappings_file", mode="before")
    @classmethod
    def _empty_means_none(cls, value: object) -> object:
        return None if value == "" else value


def env_name(*loc: str | int) -> str:
    """The environment variable that sets the field at `loc`."""
    return ENV_PREFIX + "__".join(str(p) for p in loc).upper()


def _read_secret(path: Path, source: str) -> SecretStr:
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read {path}: {exc.strerror}") from None
    if not value:
        raise ConfigError(f"{source}: {path} is empty")
    return SecretStr(value)


def _with_token(api: ApiSettings, name: str, secrets_dir: Path) -> ApiSettings:
    if api.token is not None and api.token.get_secret_value():
        return api
    if api.token_file is not None:
        token = _read_secret(api.token_file, env_name(name, "token_file"))
        return api.model_copy(update={"token": token})
    candidate = secrets_dir / f"{name}_token"
    if candidate.is_file():
        return api.model_copy(update={"token": _read_secret(candidate, str(candidate))})
    return api


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment; every problem becomes one ConfigError line."""
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors(include_input=False, include_url=False):
            lines.append(f"{env_name(*err['loc'])}: {err['msg']}")
        raise ConfigError("invalid setting: " + "; ".join(lines)) from None
    return settings.model_copy(
        update={
            "natecosmic": _with_token(settings.natecosmic, "natecosmic", settings.secrets_dir),
            "monotree": _with_token(settings.monotree, "monotree", settings.secrets_dir),
        }
    )


def require_api(settings: Settings, name: Literal["natecosmic", "monotree"]) -> tuple[str, str]:
    """The base URL and token of an API, or a ConfigError naming what is missing."""
    api: ApiSettings = getattr(settings, name)
    if not api.base_url:
        raise ConfigError(f"{env_name(name, 'base_url')} is required")
    if api.token is None or not api.token.get_secret_value():
        raise ConfigError(
            f"{env_name(name, 'token')} is required "
            f"(or {env_name(name, 'token_file')}, or {settings.secrets_dir}/{name}_token)"
        )
    return api.base_url, api.token.get_secret_value()
