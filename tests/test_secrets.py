"""Tokens never appear in logs, errors, reports, the database or reprs, even when a server echoes them."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import respx

from certsync import logging as certsync_logging
from certsync.cli.render import to_json
from certsync.engine.cycle import SyncOptions, open_clients, run_sync
from certsync.redaction import Redactor
from certsync.store import Store
from tests.conftest import MONOTREE, NATECOSMIC, mocked_api_settings
from tests.test_natecosmic import record

N_SECRET = "nc_secret_value_that_must_not_leak_1"
M_SECRET = "mono_secret_value_that_must_not_leak_2"


def echo_token(request: httpx.Request) -> httpx.Response:
    """A hostile or careless server that puts the caller's Authorization header in its error."""
    return httpx.Response(
        422, json={"message": f"bad request from {request.headers['authorization']}"}
    )


@respx.mock
def test_a_failing_run_leaks_no_token(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Logs, the error, the JSON report, the settings repr and the store hold neither token."""
    settings = mocked_api_settings(
        tmp_path,
        '[[types]]\nnatecosmic = "food-safety"\nmonotree = 12\n'
        '[[users]]\nnatecosmic = "3c90c3cc-0d44-4b50-8888-8dd25736052a"\nmonotree = 501\n',
        tokens=(N_SECRET, M_SECRET),
        client={"max_attempts": 2, "backoff_base": 0},
        log_level="debug",
        log_format="json",
    )
    redactor = Redactor()  # one per run, shared by the logger and the clients, as in main()
    certsync_logging.configure("json", "debug", redactor=redactor)
    respx.get(f"{NATECOSMIC}/v1/certifications").mock(
        return_value=httpx.Response(200, json={"data": [record(expires_on=None)]})
    )
    respx.get(f"{MONOTREE}/api/open/v1/certificates").mock(
        return_value=httpx.Response(
            200,
            json={"data": [{"id": 12, "title": "Food safety", "is_published": True}]},
        )
    )
    respx.get(f"{MONOTREE}/api/open/v1/certificates/12/users").mock(
        return_value=httpx.Response(200, json={"data": [], "links": {"next": None}})
    )
    respx.post(f"{MONOTREE}/api/open/v1/certificates/assign").mock(side_effect=echo_token)

    store = Store(settings.database_url)
    with open_clients(settings, redactor=redactor) as clients:
        report = run_sync(settings, store, clients, SyncOptions(today=None))
    store.close()

    assert report.result.failures, "the run was meant to fail"
    captured = capsys.readouterr()
    everything = "\n".join(
        [
            captured.out,
            captured.err,
            json.dumps(to_json(report), default=str),
            repr(settings),
            str(settings.model_dump()),
            *(f.error for f in report.result.failures),
            repr(clients),
        ]
    )
    assert "bad request from" in everything  # the server's words are kept ...
    assert "[redacted]" in everything  # ... with the token cut out
    for secret in (N_SECRET, M_SECRET):
        assert secret not in everything
        assert secret.encode() not in (tmp_path / "c.db").read_bytes()
        wal = tmp_path / "c.db-wal"
        assert not wal.exists() or secret.encode() not in wal.read_bytes()
