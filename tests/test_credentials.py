"""Credentials are proven every cycle, re-read when rotated, and every failure names its setting."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import respx

from certsync.cli.exit_codes import EXIT_CONFIG, for_error
from certsync.clients.credentials import Credential, TokenSource
from certsync.clients.http import ApiHttp
from certsync.clients.monotree import MonotreeClient
from certsync.clients.natecosmic import NatecosmicClient
from certsync.errors import AuthError, EndpointNotFoundError, RetriableError
from certsync.redaction import Redactor
from certsync.settings import load_settings
from tests.conftest import MONOTREE, NATECOSMIC

LIST = f"{MONOTREE}/api/open/v1/certificates"


def file_credential(path: Path, redactor: Redactor | None = None) -> Credential:
    source = TokenSource("monotree", None, path, path.parent / "unused")
    return Credential(source, redactor or Redactor())


Make = Callable[..., ApiHttp]


def session(
    make_http: Make, credential: Credential, base_url: str = MONOTREE, api: str = "monotree"
) -> ApiHttp:
    return make_http(api, base_url, credential, max_attempts=2, backoff_base=0)


def accepts(token: str) -> Callable[[httpx.Request], httpx.Response]:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.headers["authorization"] != f"Bearer {token}":
            return httpx.Response(401, json={"message": "Unauthenticated."})
        return httpx.Response(200, json={"data": [], "links": {"next": None}})

    return answer


@respx.mock
def test_a_401_reads_the_token_file_again_and_retries_once(tmp_path: Path, make_http: Make) -> None:
    """The Secret rotated between cycles: the request after the 401 carries the new token."""
    token_file = tmp_path / "monotree_token"
    token_file.write_text("mono_old_token_1111\n")
    credential = file_credential(token_file)
    assert credential.token == "mono_old_token_1111"  # what the last cycle sent
    route = respx.get(LIST).mock(side_effect=accepts("mono_new_token_2222"))
    token_file.write_text("mono_new_token_2222\n")

    assert MonotreeClient(session(make_http, credential)).list_templates() == []
    assert route.call_count == 2
    assert credential.token == "mono_new_token_2222"


@respx.mock
def test_a_401_with_an_unchanged_token_fails_naming_the_token_file(
    tmp_path: Path, make_http: Make
) -> None:
    """No retry loop on a wrong token: one reload, then an error that names the file to fix."""
    token_file = tmp_path / "monotree_token"
    token_file.write_text("mono_wrong_token_333")
    route = respx.get(LIST).mock(side_effect=accepts("mono_right_token_444"))
    with pytest.raises(AuthError) as caught:
        MonotreeClient(session(make_http, file_credential(token_file))).list_templates()
    assert route.call_count == 1
    assert for_error(caught.value) == EXIT_CONFIG
    message = str(caught.value)
    assert f"CERTSYNC_MONOTREE__TOKEN_FILE ({token_file})" in message
    assert "mono_wrong_token_333" not in message


def test_every_token_read_is_registered_with_the_redactor(tmp_path: Path) -> None:
    """A rotated token is as secret as the first one."""
    token_file = tmp_path / "t"
    token_file.write_text("mono_first_secret_55")
    redactor = Redactor()
    credential = file_credential(token_file, redactor)
    assert credential.token == "mono_first_secret_55"
    token_file.write_text("mono_second_secret_66")
    assert credential.reload() is True
    assert credential.reload() is False
    text = redactor("a mono_first_secret_55 b mono_second_secret_66")
    assert text == "a [redacted] b [redacted]"


@respx.mock
def test_a_404_on_a_list_endpoint_names_the_base_url_setting(make_http: Make) -> None:
    """A wrong base URL is a configuration error (exit 2), never 'template missing'."""
    respx.get(LIST).mock(return_value=httpx.Response(404, json={"message": "Not found."}))
    credential = Credential.fixed("monotree", "mono_token_for_404_test", Redactor())
    with pytest.raises(EndpointNotFoundError) as caught:
        MonotreeClient(session(make_http, credential)).list_templates()
    assert for_error(caught.value) == EXIT_CONFIG
    assert "GET /api/open/v1/certificates answered 404" in str(caught.value)
    assert "check CERTSYNC_MONOTREE__BASE_URL" in str(caught.value)


@respx.mock
def test_a_404_on_the_pull_names_the_natecosmic_base_url(make_http: Make) -> None:
    respx.get(f"{NATECOSMIC}/v1/certifications").mock(return_value=httpx.Response(404))
    credential = Credential.fixed("natecosmic", "nc_token_for_404_test", Redactor())
    http = session(make_http, credential, base_url=NATECOSMIC, api="natecosmic")
    with pytest.raises(EndpointNotFoundError, match="check CERTSYNC_NATECOSMIC__BASE_URL"):
        NatecosmicClient(http).list_certifications()


def test_a_refused_connection_names_host_and_port(make_http: Make) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    credential = Credential.fixed("monotree", "mono_token_refused_77", Redactor())
    http = session(make_http, credential, base_url=f"http://127.0.0.1:{port}")
    with pytest.raises(RetriableError, match=rf"cannot connect to 127\.0\.0\.1:{port}"):
        MonotreeClient(http).list_templates()


@pytest.mark.parametrize("suffix", ["/api/open/v1", "/api/open/v1/"])
def test_a_base_url_copied_from_the_reference_is_normalised_with_a_notice(
    monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    monkeypatch.setenv("CERTSYNC_MONOTREE__BASE_URL", f"https://x.monotree.com{suffix}")
    settings = load_settings()
    assert settings.monotree.base_url == "https://x.monotree.com"
    (notice,) = settings.notices
    assert "CERTSYNC_MONOTREE__BASE_URL=https://x.monotree.com" in notice


def test_an_origin_needs_no_notice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CERTSYNC_MONOTREE__BASE_URL", "https://x.monotree.com/")
    monkeypatch.setenv("CERTSYNC_NATECOSMIC__BASE_URL", "https://api.natecosmic.com")
    settings = load_settings()
    assert settings.monotree.base_url == "https://x.monotree.com"
    assert settings.notices == ()
