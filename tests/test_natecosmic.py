"""The Natecosmic client: record-by-record validation; a broken body fails the whole pull."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from certsync.clients.http import ApiHttp
from certsync.clients.natecosmic import NatecosmicClient, parse_certifications, parse_record
from certsync.clients.session import open_clients
from certsync.engine.gather import pull_certifications
from certsync.errors import CertsyncError, ResponseFormatError
from certsync.models import CertificationRecord
from certsync.store import Store, validator
from tests.conftest import NATECOSMIC, mocked_api_settings

URL = f"{NATECOSMIC}/v1/certifications"


def record(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "3c90c3cc-0d44-4b50-8888-8dd25736052a",
        "organization_id": "3c90c3cc-0d44-4b50-8888-8dd25736052a",
        "organization_member_id": "3c90c3cc-0d44-4b50-8888-8dd25736052a",
        "user_id": "3c90c3cc-0d44-4b50-8888-8dd25736052a",
        "external_id": "<string>",
        "external_source": "<string>",
        "certification_type_id": "3c90c3cc-0d44-4b50-8888-8dd25736052a",
        "lifecycle_status": "active",
        "source": "manual",
        "issued_on": "2023-12-25",
        "expires_on": "2023-12-25",
        "issuer_name": "<string>",
        "serial_number": "<string>",
        "verification_status": "unverified",
        "validity_status": "valid",
        "verification_method": "<string>",
        "last_verified_at": "2023-11-07T05:31:56Z",
        "created_at": "2023-11-07T05:31:56Z",
        "updated_at": "2023-11-07T05:31:56Z",
        "certification_type": {
            "id": "3c90c3cc-0d44-4b50-8888-8dd25736052a",
            "slug": "food-safety",
            "title": "Food safety",
            "status": "active",
        },
    }
    base.update(overrides)
    return base


def test_the_documented_example_parses_with_every_field() -> None:
    """The API document's example record parses into a typed, frozen record."""
    pull = parse_certifications({"data": [record()]})
    assert pull.rejected == ()
    r = pull.records[0]
    assert isinstance(r, CertificationRecord)
    assert (r.serial_number, r.verification_method, r.certification_type.slug) == (  # type: ignore[union-attr]
        "<string>",
        "<string>",
        "food-safety",
    )
    with pytest.raises(AttributeError):
        r.user_id = "someone else"  # type: ignore[misc]


def test_a_record_with_a_bad_date_is_rejected_while_neighbours_parse() -> None:
    """An impossible date rejects that record only, with a reason naming the field."""
    pull = parse_certifications(
        {"data": [record(id="a"), record(id="b", issued_on="2024-02-30"), record(id="c")]}
    )
    assert [r.id for r in pull.records] == ["a", "c"]
    assert pull.rejected[0].record_id == "b" and pull.rejected[0].index == 1
    assert "issued_on" in pull.rejected[0].reason


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ({"user_id": None}, "user_id"),
        ({"user_id": 42}, "user_id"),
        ({"certification_type_id": None, "certification_type": None}, "certification_type"),
        ({"expires_on": "tomorrow"}, "expires_on"),
        ({"lifecycle_status": 3}, "lifecycle_status"),
    ],
)
def test_invalid_records_are_rejected_with_a_reason(bad: dict[str, Any], reason: str) -> None:
    """Missing user, wrong types, no type identity: rejected and explained, never fatal."""
    pull = parse_certifications({"data": [record(**bad), record(id="fine")]})
    assert [r.id for r in pull.records] == ["fine"]
    assert reason in pull.rejected[0].reason


def test_unknown_enum_values_are_kept_and_extra_fields_ignored() -> None:
    """A status Natecosmic adds later is kept as text; unknown fields are dropped quietly."""
    pull = parse_certifications({"data": [record(lifecycle_status="suspended", shiny_new_field=1)]})
    assert pull.records[0].lifecycle_status == "suspended"


def test_a_non_object_item_and_a_duplicate_id_are_rejected() -> None:
    """A list item that is not an object, and the same record id twice, are rejected."""
    pull = parse_certifications({"data": ["oops", record(id="x"), record(id="x")]})
    assert [r.id for r in pull.records] == ["x"]
    assert [r.reason for r in pull.rejected] == [
        "record is a str, not an object",
        "duplicate record id in the pull",
    ]


@pytest.mark.parametrize("body", [[], {"items": []}, {"data": {}}, None, "text"])
def test_a_body_without_a_data_list_fails_the_pull(body: Any) -> None:
    """The wrong envelope is an error for the whole pull, never an empty list."""
    with pytest.raises(ResponseFormatError):
        parse_certifications(body)


@respx.mock
def test_client_pulls_over_http(make_http: Callable[..., ApiHttp]) -> None:
    """The client GETs /v1/certifications with the bearer token and parses it."""
    route = respx.get(URL).mock(return_value=httpx.Response(200, json={"data": [record()]}))
    pull = NatecosmicClient(make_http("natecosmic", NATECOSMIC)).list_certifications()
    assert len(pull.records) == 1
    assert route.calls.last.request.headers["authorization"].startswith("Bearer nc_")


@respx.mock
def test_truncated_json_fails_the_pull(make_http: Callable[..., ApiHttp]) -> None:
    """A truncated body is an error, not an empty pull."""
    respx.get(URL).mock(return_value=httpx.Response(200, content=b'{"data": [{"id": "a"'))
    with pytest.raises(ResponseFormatError):
        NatecosmicClient(make_http("natecosmic", NATECOSMIC)).list_certifications()


@respx.mock
def test_an_unchanged_pull_is_a_304_that_costs_no_body(make_http: Callable[..., ApiHttp]) -> None:
    """With the ETag of the last body, the pull asks If-None-Match; a 304 is "unchanged",
    never an empty list; without a validator, no header is sent and the ETag is returned."""
    client = NatecosmicClient(make_http("natecosmic", NATECOSMIC))
    route = respx.get(URL).mock(
        return_value=httpx.Response(200, json={"data": [record()]}, headers={"ETag": '"v1"'})
    )
    fetched = client.fetch_certifications(None)
    assert fetched.pull is not None and len(fetched.pull.records) == 1
    assert fetched.etag == '"v1"'
    assert "if-none-match" not in route.calls.last.request.headers

    route.mock(return_value=httpx.Response(304, headers={"ETag": '"v1"'}))
    unchanged = client.fetch_certifications('"v1"')
    assert (unchanged.pull, unchanged.etag) == (None, '"v1"')
    assert route.calls.last.request.headers["if-none-match"] == '"v1"'


@respx.mock
def test_a_304_nobody_asked_for_fails_the_pull(make_http: Callable[..., ApiHttp]) -> None:
    respx.get(URL).mock(return_value=httpx.Response(304))
    with pytest.raises(CertsyncError):
        NatecosmicClient(make_http("natecosmic", NATECOSMIC)).fetch_certifications(None)


@respx.mock
def test_a_304_to_an_etag_the_snapshot_no_longer_carries_pulls_whole(tmp_path: Path) -> None:
    """A release before ETags rewrites the snapshot and leaves the stored ETag stale: a
    304 to that ETag must not be answered from a snapshot of another body."""
    settings = mocked_api_settings(tmp_path, '[[types]]\nnatecosmic = "x"\nmonotree = 1\n')
    store = Store(settings.database_url)
    store.upgrade()
    older = parse_record(0, record(id="older"))
    assert isinstance(older, CertificationRecord)
    store.snapshots.save([older], made_from=validator('"v1"', NATECOSMIC))
    store.snapshots.save([older])  # as a release before ETags would
    store.values.set("pull_etag", validator('"v1"', NATECOSMIC))  # ... leaving this behind
    route = respx.get(URL)
    route.side_effect = [
        httpx.Response(304, headers={"ETag": '"v1"'}),
        httpx.Response(200, json={"data": [record(id="now")]}),
    ]
    with open_clients(settings) as clients:
        pulled = pull_certifications(store, clients)
    store.close()
    assert [r.id for r in pulled.pull.records] == ["now"] and not pulled.unchanged
    assert [c.request.headers.get("if-none-match") for c in route.calls] == ['"v1"', None]


@respx.mock
def test_a_weak_etag_is_not_kept(tmp_path: Path) -> None:
    """W/ promises an equivalent body, not the same bytes: the next pull asks for it whole."""
    settings = mocked_api_settings(tmp_path, '[[types]]\nnatecosmic = "x"\nmonotree = 1\n')
    store = Store(settings.database_url)
    store.upgrade()
    respx.get(URL).mock(
        return_value=httpx.Response(200, json={"data": [record()]}, headers={"ETag": 'W/"v1"'})
    )
    with open_clients(settings) as clients:
        pulled = pull_certifications(store, clients)
    store.close()
    assert pulled.validator is None and len(pulled.pull.records) == 1
