"""Settings from the environment; tokens from files and a secrets directory; clear errors."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from certsync.errors import ConfigError
from certsync.settings import api_problems, load_settings, require_api, token_source
from tests.conftest import CERTSYNC, clean_env


@pytest.fixture(autouse=True)
def _no_developer_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in [k for k in os.environ if k.startswith("CERTSYNC_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("CERTSYNC_SECRETS_DIR", str(tmp_path / "secrets"))


def test_nested_names_as_spec_md_gives_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """CERTSYNC_ prefix and __ nesting set every documented setting."""
    monkeypatch.setenv("CERTSYNC_MONOTREE__BASE_URL", "https://acme.monotree.com/")
    monkeypatch.setenv("CERTSYNC_MONOTREE__TOKEN", "mono_x")
    monkeypatch.setenv("CERTSYNC_SCHEDULE__INTERVAL", "60")
    monkeypatch.setenv("CERTSYNC_SCHEDULE__CRON", "*/5 * * * *")
    monkeypatch.setenv("CERTSYNC_SCHEDULE__FULL_EVERY", "3600")
    monkeypatch.setenv("CERTSYNC_HTTP__PORT", "0")
    monkeypatch.setenv("CERTSYNC_DATABASE_URL", "sqlite:////data/certsync.db")
    s = load_settings()
    assert s.monotree.base_url == "https://acme.monotree.com"
    assert s.natecosmic.base_url == "https://api.natecosmic.com"
    assert (s.schedule.interval, s.schedule.cron, s.schedule.full_every) == (
        60,
        "*/5 * * * *",
        3600,
    )
    assert s.http.port == 0 and s.http.host == "0.0.0.0"
    assert s.database_url == "sqlite:////data/certsync.db"
    assert s.mappings_file == Path("config/mappings.toml")
    assert "mono_x" not in repr(s)


def test_defaults() -> None:
    """Defaults are those the README's configuration table gives."""
    s = load_settings()
    assert s.schedule.interval == 900 and s.schedule.full_every == 86400
    assert s.http.port == 8080
    assert s.database_url == "sqlite:///certsync.db"
    assert s.sync.chunk_size == 500


def test_token_from_a_file_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """CERTSYNC_MONOTREE__TOKEN_FILE reads the token from a file, trimmed."""
    secret = tmp_path / "token"
    secret.write_text("mono_from_file\n")
    monkeypatch.setenv("CERTSYNC_MONOTREE__BASE_URL", "https://acme.monotree.com")
    monkeypatch.setenv("CERTSYNC_MONOTREE__TOKEN_FILE", str(secret))
    base_url, source = require_api(load_settings(), "monotree")
    assert (base_url, source.read()) == ("https://acme.monotree.com", "mono_from_file")
    assert source.describe() == f"CERTSYNC_MONOTREE__TOKEN_FILE ({secret})"


def test_token_from_the_secrets_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A file named natecosmic_token in the secrets directory supplies the token."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "natecosmic_token").write_text("nc_from_secrets")
    source = require_api(load_settings(), "natecosmic")[1]
    assert source.read() == "nc_from_secrets"
    assert source.describe() == f"the secrets file {secrets / 'natecosmic_token'}"


def test_unreadable_token_file_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A token file that cannot be read is a ConfigError naming the variable."""
    monkeypatch.setenv("CERTSYNC_MONOTREE__BASE_URL", "https://acme.monotree.com")
    monkeypatch.setenv("CERTSYNC_MONOTREE__TOKEN_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="CERTSYNC_MONOTREE__TOKEN_FILE: cannot read"):
        token_source(load_settings(), "monotree").read()


def test_missing_token_names_every_way_to_give_it() -> None:
    """A missing token names the variable, the _FILE variant and the secrets file."""
    with pytest.raises(ConfigError, match=r"CERTSYNC_MONOTREE__BASE_URL: required"):
        require_api(load_settings(), "monotree")
    (problem,) = api_problems(load_settings(), ("natecosmic",))
    assert problem.startswith(
        "CERTSYNC_NATECOSMIC__TOKEN is required (or CERTSYNC_NATECOSMIC__TOKEN_FILE"
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CERTSYNC_SCHEDULE__INTERVAL", "soon"),
        ("CERTSYNC_HTTP__PORT", "70000"),
        ("CERTSYNC_MONOTREE__BASE_URL", "ftp://x"),
        ("CERTSYNC_MONOTREE__BASE_URL", "https://127.0.0.1:99999"),
        ("CERTSYNC_CLIENT__MAX_ATTEMPTS", "0"),
    ],
)
def test_malformed_setting_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    """A malformed value is a ConfigError that names the variable."""
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        load_settings()


def test_cli_reports_a_bad_setting_in_one_line_with_exit_2(tmp_path: Path) -> None:
    """The command prints one clear line, exits 2 and shows no traceback."""
    env = {**clean_env(), "CERTSYNC_SCHEDULE__INTERVAL": "soon"}
    result = subprocess.run(
        [CERTSYNC, "status"], env=env, cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "certsync: error: invalid setting: CERTSYNC_SCHEDULE__INTERVAL: must be a number"
    ]
    assert "Traceback" not in result.stderr


def test_cli_sync_without_tokens_exits_2(tmp_path: Path) -> None:
    """sync with no Monotree settings at all says which variable is missing and exits 2."""
    (tmp_path / "m.toml").write_text("")
    env = {
        **clean_env(),
        "CERTSYNC_MAPPINGS_FILE": str(tmp_path / "m.toml"),
        "CERTSYNC_SECRETS_DIR": str(tmp_path),
    }
    result = subprocess.run(
        [CERTSYNC, "sync"], env=env, cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "certsync: error: 3 settings to fix:",
        f"  CERTSYNC_NATECOSMIC__TOKEN is required (or CERTSYNC_NATECOSMIC__TOKEN_FILE, "
        f"or a file {tmp_path / 'natecosmic_token'})",
        "  CERTSYNC_MONOTREE__BASE_URL: required (the API origin, "
        "e.g. https://<company>.monotree.com)",
        f"  CERTSYNC_MONOTREE__TOKEN is required (or CERTSYNC_MONOTREE__TOKEN_FILE, "
        f"or a file {tmp_path / 'monotree_token'})",
    ]


def test_every_invalid_setting_is_named_in_one_message(tmp_path: Path) -> None:
    """Three mistakes, one run: the operator fixes them all at once."""
    env = {
        **clean_env(),
        "CERTSYNC_SCHEDULE__INTERVAL": "soon",
        "CERTSYNC_HTTP__PORT": "70000",
        "CERTSYNC_LOG_LEVEL": "loud",
    }
    result = subprocess.run(
        [CERTSYNC, "status"], env=env, cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "certsync: error: 3 settings to fix:",
        "  CERTSYNC_LOG_LEVEL: must be one of 'debug', 'info', 'warning' or 'error'",
        "  CERTSYNC_SCHEDULE__INTERVAL: must be a number",
        "  CERTSYNC_HTTP__PORT: must be at most 65535",
    ]


def test_cli_usage_error_exits_2(tmp_path: Path) -> None:
    """An unknown option is a usage error: exit 2, no traceback."""
    result = subprocess.run(
        [CERTSYNC, "sync", "--bogus"],
        env=clean_env(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "unrecognized arguments: --bogus" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_invalid_value_and_missing_api_settings_come_in_one_message(tmp_path: Path) -> None:
    """The invalid interval does not hide that the tokens and Monotree's URL are missing."""
    env = {
        **clean_env(),
        "CERTSYNC_SCHEDULE__INTERVAL": "soon",
        "CERTSYNC_SECRETS_DIR": str(tmp_path),
    }
    result = subprocess.run(
        [CERTSYNC, "sync"], env=env, cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert lines[0] == "certsync: error: 4 settings to fix:"
    named = [line.split()[0].rstrip(":") for line in lines[1:]]
    assert named == [
        "CERTSYNC_SCHEDULE__INTERVAL",
        "CERTSYNC_NATECOSMIC__TOKEN",
        "CERTSYNC_MONOTREE__BASE_URL",
        "CERTSYNC_MONOTREE__TOKEN",
    ]
