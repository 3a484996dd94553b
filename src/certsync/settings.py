"""Settings from the environment (prefix `CERTSYNC_`, nesting `__`), built once and passed down.

Tokens are `SecretStr` and may also come from a `*_TOKEN_FILE` variable or a
secrets directory (`/run/secrets/natecosmic_token`, `/run/secrets/monotree_token`),
which is how Docker and Kubernetes hand secrets over without putting them in
the environment. Files are not read here: `certsync.clients.credentials` reads them
before every cycle, so a rotated Secret needs no restart.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from certsync.errors import ConfigError
from certsync.tokens import TokenSource

ENV_PREFIX = "CERTSYNC_"
ApiName = Literal["natecosmic", "monotree"]


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
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises for a port out of range or not a number
        except ValueError:
            raise ValueError("has a port that is not a number from 1 to 65535") from None
        if not parts.hostname:
            raise ValueError("names no host")
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
    max_backoff: float = Field(default=30.0, gt=0)
    stop_timeout: float = Field(default=30.0, gt=0)


class HttpListenerSettings(_Section):
    host: str = "0.0.0.0"  # noqa: S104 - a container's health port must be reachable
    port: int = Field(default=8080, ge=0, le=65535)
    # The admin API (`POST /runs`, `GET /runs/{id}`) is on only with a token.
    admin_token: SecretStr | None = None
    admin_token_file: Path | None = None


class WebhookSettings(_Section):
    """Monotree's outgoing webhooks, on a listener of their own (only it faces the internet)."""

    host: str = "0.0.0.0"  # noqa: S104 - Monotree must reach it
    port: int = Field(default=0, ge=0, le=65535)  # 0: no receiver
    # One or more secrets, comma-separated; during a rotation both are accepted.
    secrets: SecretStr | None = None
    secrets_file: Path | None = None  # one secret a line, read again on every delivery
    # How old the kept pull may be for a webhook's sync to use it instead of pulling.
    pull_max_age: float = Field(default=900.0, ge=0)


class LeaseSettings(_Section):
    """The writer lock and the daemons' leadership (docs/high-availability.md)."""

    # A holder renews every third of it; a replica takes over once it ran out.
    duration: float = Field(default=30.0, ge=3.0, le=3600.0)
    # How often a standby looks at the leader lease (and the leader at webhook deliveries
    # another replica received).
    standby_poll: float = Field(default=1.0, gt=0, le=60.0)

    @model_validator(mode="after")
    def _renewed_in_time(self) -> LeaseSettings:
        # The leader renews on its polls: they must come at least every third of a lease.
        if self.standby_poll > self.duration / 3:
            raise ValueError(
                f"the standby poll (CERTSYNC_LEASE__STANDBY_POLL, {self.standby_poll:g} s) "
                "must be at most a third of the lease (CERTSYNC_LEASE__DURATION, "
                f"{self.duration:g} s): the leader renews its lease on each poll"
            )
        return self


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
    # The database password from a file (a mounted Secret), never in the URL or the logs.
    database_password_file: Path | None = None
    mappings_file: Path | None = Path("config/mappings.toml")
    secrets_dir: Path = Path("/run/secrets")
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    client: ClientSettings = ClientSettings()
    sync: SyncSettings = SyncSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    http: HttpListenerSettings = HttpListenerSettings()
    webhook: WebhookSettings = WebhookSettings()
    lease: LeaseSettings = LeaseSettings()
    # Warnings about values certsync corrected (a base URL with the API path in it).
    _notices: tuple[str, ...] = PrivateAttr(default=())

    @property
    def notices(self) -> tuple[str, ...]:
        return self._notices

    @field_validator("mappings_file", mode="before")
    @classmethod
    def _empty_means_none(cls, value: object) -> object:
        return None if value == "" else value


def env_name(*loc: str | int) -> str:
    """The environment variable that sets the field at `loc`."""
    return ENV_PREFIX + "__".join(str(p) for p in loc).upper()


# What each client appends to its origin: a base URL copied with it would double it.
_API_PATHS = {"natecosmic": "/v1", "monotree": "/api/open/v1"}
_ORIGIN_EXAMPLES = {
    "natecosmic": "https://api.natecosmic.com",
    "monotree": "https://<company>.monotree.com",
}


def _normalised(settings: Settings) -> Settings:
    """Strip an API path copied into a base URL, with a notice saying what to write."""
    notices: list[str] = []
    update: dict[str, object] = {}
    for name in ("natecosmic", "monotree"):
        api: ApiSettings = getattr(settings, name)
        suffix = _API_PATHS[name]
        if api.base_url and api.base_url.endswith(suffix):
            origin = api.base_url[: -len(suffix)]
            if "://" in origin and origin.split("://", 1)[1]:
                update[name] = api.model_copy(update={"base_url": origin})
                notices.append(
                    f"{env_name(name, 'base_url')} ends in {suffix}, which certsync adds itself: "
                    f"using {origin}; set {env_name(name, 'base_url')}={origin}"
                )
    fixed = settings.model_copy(update=update) if update else settings
    fixed._notices = tuple(notices)
    return fixed


_PLAIN = {
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "int_parsing": "must be a whole number",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "extra_forbidden": "is not a setting certsync knows (check the spelling)",
    "missing": "required",
}
_BOUNDS = {
    "greater_than": "must be greater than {gt}",
    "greater_than_equal": "must be at least {ge}",
    "less_than": "must be less than {lt}",
    "less_than_equal": "must be at most {le}",
    "literal_error": "must be one of {expected}",
}


def _describe_error(err: Any) -> str:
    """One pydantic error in an operator's words, by variable name (never the value: it may
    be a token)."""
    kind = str(err["type"])
    if kind in _PLAIN:
        message = _PLAIN[kind]
    elif kind in _BOUNDS:
        message = _BOUNDS[kind].format(**err.get("ctx", {}))
    else:
        message = str(err["msg"]).removeprefix("Value error, ")
        message = message[:1].lower() + message[1:]
    return f"{env_name(*err['loc'])}: {message}"


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment; every problem is listed in one ConfigError."""
    return _load(overrides, needs_apis=False)


def load_command_settings(*, needs_apis: bool) -> Settings:
    """The command line's settings. With `needs_apis`, a missing API setting is named
    beside the invalid ones even when no settings object can be built to check it."""
    return _load({}, needs_apis=needs_apis)


def _load(overrides: Mapping[str, object], *, needs_apis: bool) -> Settings:
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]  # overrides are field values
    except ValidationError as exc:
        problems = [_describe_error(e) for e in exc.errors(include_url=False)]
        if needs_apis:
            named = {p.split(":", 1)[0] for p in problems}
            problems += [
                p
                for p in _api_problems_from_env(os.environ)
                if p.split(" ", 1)[0].rstrip(":") not in named
            ]
        raise ConfigError(settings_message(problems)) from None
    return _normalised(settings)


def _api_problems_from_env(env: Mapping[str, str]) -> list[str]:
    """`api_problems`, read straight from the environment, for when Settings cannot be built."""
    problems: list[str] = []
    secrets = Path(env.get("CERTSYNC_SECRETS_DIR") or "/run/secrets")
    for name in ("natecosmic", "monotree"):
        if name == "monotree" and not env.get(env_name(name, "base_url")):
            problems.append(
                f"{env_name(name, 'base_url')}: required (the API origin, "
                f"e.g. {_ORIGIN_EXAMPLES[name]})"
            )
        token, token_file = env.get(env_name(name, "token")), env.get(env_name(name, "token_file"))
        source = TokenSource(
            name,
            SecretStr(token) if token else None,
            Path(token_file) if token_file else None,
            secrets / f"{name}_token",
        )
        try:
            source.read()
        except ConfigError as exc:
            problems.append(str(exc))
    return problems


def settings_message(problems: list[str]) -> str:
    if len(problems) == 1:
        return f"invalid setting: {problems[0]}"
    return f"{len(problems)} settings to fix:\n  " + "\n  ".join(problems)


def token_source(settings: Settings, name: ApiName) -> TokenSource:
    api: ApiSettings = getattr(settings, name)
    return TokenSource(name, api.token, api.token_file, settings.secrets_dir / f"{name}_token")


def api_problems(
    settings: Settings,
    names: tuple[ApiName, ...] = ("natecosmic", "monotree"),
    *,
    tokens: bool = True,
) -> list[str]:
    """Every missing base URL (and, with `tokens`, unreadable token) of these APIs, by name."""
    problems: list[str] = []
    for name in names:
        api: ApiSettings = getattr(settings, name)
        if not api.base_url:
            problems.append(
                f"{env_name(name, 'base_url')}: required (the API origin, "
                f"e.g. {_ORIGIN_EXAMPLES[name]})"
            )
        if not tokens:
            continue
        try:
            token_source(settings, name).read()
        except ConfigError as exc:
            problems.append(str(exc))
    return problems


def require_api(settings: Settings, name: ApiName) -> tuple[str, TokenSource]:
    """The base URL and token source of an API; the token itself is read when first used."""
    problems = api_problems(settings, (name,), tokens=False)
    if problems:
        raise ConfigError(settings_message(problems))
    base_url = getattr(settings, name).base_url
    assert base_url is not None  # api_problems reported it otherwise
    return base_url, token_source(settings, name)


def check_config(settings: Settings) -> None:
    """Fail early with every missing or unreadable setting in one message, by variable name."""
    problems: list[str] = []
    if settings.mappings_file is not None and not settings.mappings_file.exists():
        problems.append(
            f"CERTSYNC_MAPPINGS_FILE: {settings.mappings_file} not found (set it to an empty "
            "value to sync with the mappings already in the store)"
        )
    problems += api_problems(settings)
    if problems:
        raise ConfigError(settings_message(problems))
