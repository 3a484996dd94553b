"""Security: tokens stay out of the process title; TLS verification is on unless turned off, loudly."""

from __future__ import annotations

import json
import signal
import ssl
from datetime import date
from pathlib import Path

import httpx
import pytest

from certsync.clients import session as sync_module
from certsync.clients.session import build_client, tls_context
from certsync.sandbox import SandboxState, generate
from certsync.settings import ClientSettings, load_settings
from tests.conftest import Cli, free_port, wait_for


def test_tls_verification_is_on_by_default_and_off_only_when_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Both clients verify TLS unless CERTSYNC_<API>__VERIFY_TLS=false."""
    seen: list[bool] = []

    def record(settings: ClientSettings, base_url: str, *, verify: bool = True) -> httpx.Client:
        seen.append(verify)
        return build_client(settings, base_url, verify=verify)

    monkeypatch.setattr(sync_module, "build_client", record)
    base = {
        "natecosmic": {"token": "nc_x"},
        "monotree": {"base_url": "https://m.example.com", "token": "mono_x"},
    }
    with sync_module.open_clients(load_settings(**base)):
        pass
    assert seen == [True, True]
    seen.clear()
    off = {**base, "monotree": {**base["monotree"], "verify_tls": False}}
    with sync_module.open_clients(load_settings(**off)):
        pass
    assert seen == [True, False]


def test_an_https_api_trusts_the_ca_bundle_and_a_plain_http_one_trusts_no_root() -> None:
    """The CA bundle is loaded once for every HTTPS client; plain HTTP never needs it, and
    its context would refuse any certificate; `verify=False` alone turns checks off."""
    https = tls_context("https://127.0.0.1:8443")
    assert https.verify_mode is ssl.CERT_REQUIRED and https.check_hostname
    assert https.cert_store_stats()["x509_ca"] > 0
    assert tls_context("https://127.0.0.1:9443") is https  # loaded once per process
    plain = tls_context("http://127.0.0.1:8080")
    assert plain.verify_mode is ssl.CERT_REQUIRED and plain.check_hostname
    assert plain.cert_store_stats()["x509_ca"] == 0
    off = tls_context("https://127.0.0.1:8443", verify=False)
    assert off.verify_mode is ssl.CERT_NONE


@pytest.mark.e2e
def test_tls_off_warns_on_every_run(cli: Cli, sandbox_state: SandboxState) -> None:
    """With verification off, every run logs a warning naming the setting."""
    world = generate(sandbox_state, users=3, types=1, seed=1, today=date.today())
    (cli.cwd / "mappings.toml").write_text(world.mapping_toml)
    for _ in range(2):
        result = cli("sync", CERTSYNC_MONOTREE__VERIFY_TLS="false")
        assert result.returncode == 0
        events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
        warnings = [e for e in events if e["event"] == "http.tls_verification_off"]
        assert warnings and warnings[0]["setting"] == "CERTSYNC_MONOTREE__VERIFY_TLS"


@pytest.mark.e2e
def test_no_token_in_the_process_title_or_the_database(
    cli: Cli, sandbox_state: SandboxState, tmp_path: Path
) -> None:
    """A running daemon's command line (what ps shows) and its store never contain a token."""
    world = generate(sandbox_state, users=5, types=1, seed=1, today=date.today())
    (cli.cwd / "mappings.toml").write_text(world.mapping_toml)
    port = free_port()
    proc = cli.popen(
        "run",
        CERTSYNC_SCHEDULE__INTERVAL="1",
        CERTSYNC_HTTP__PORT=str(port),
        CERTSYNC_HTTP__HOST="127.0.0.1",
    )
    try:
        wait_for(lambda: bool(sandbox_state.active_pairs()), what="a converged cycle")
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    stored = b"".join(p.read_bytes() for p in cli.cwd.glob("certsync.db*"))
    for token in (cli.env["CERTSYNC_NATECOSMIC__TOKEN"], cli.env["CERTSYNC_MONOTREE__TOKEN"]):
        assert token.encode() not in cmdline
        assert token.encode() not in stored
        assert token not in err
