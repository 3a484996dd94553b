"""The Natecosmic client: record-by-record validation; a broken body fails the whole pull."""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from sqlalchemy import text

from certsync.clients.conditional import Validators
from certsync.clients.http import ApiHttp
from certsync.clients.natecosmic import (
    NatecosmicClient,
    parse_certifications,
    parse_certifications_stream,
    parse_record,
)
from certsync.clients.session import open_clients
from certsync.engine.pulled import pull_certifications
from certsync.errors import CertsyncError, ResponseFormatError
from certsync.models import CertificationRecord
from certsync.store import MadeFrom, Store
from tests.conftest import NATECOSMIC, mocked_api_settings

URL = f"{NATECOSMIC}/v1/certifications"
HTTP_NOW = "Mon, 30 Nov 2026 09:00:00 GMT"


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
    assert (r.verification_status, r.certification_type.slug) == (  # type: ignore[union-attr]
        "unverified",
        "food-safety",
    )
    # Every documented field is validated, kept or not.
    rejected = parse_certifications({"data": [record(serial_number=7)]}).rejected
    assert [x.reason for x in rejected] == ["serial_number: Input should be a valid string"]
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
    """With the validators of the last body, the pull asks If-None-Match (or, without an
    ETag, If-Modified-Since); a 304 is "unchanged", never an empty list. Without them no
    header is sent, and the body comes back hashed, with its validators."""
    client = NatecosmicClient(make_http("natecosmic", NATECOSMIC))
    dated = {"Last-Modified": "Mon, 30 Nov 2026 08:00:00 GMT", "Date": HTTP_NOW}
    content = json.dumps({"data": [record()]}).encode()
    route = respx.get(URL).mock(
        return_value=httpx.Response(200, content=content, headers={"ETag": '"v1"', **dated})
    )
    fetched = client.fetch_certifications()
    assert fetched.body is not None and fetched.body.digest == hashlib.sha256(content).hexdigest()
    with fetched.body as body:
        assert len(parse_certifications_stream(body.chunks()).records) == 1
    assert fetched.validators == Validators('"v1"', dated["Last-Modified"])
    assert not {"if-none-match", "if-modified-since"} & set(route.calls.last.request.headers)

    route.mock(return_value=httpx.Response(304, headers={"ETag": '"v1"'}))
    unchanged = client.fetch_certifications(fetched.validators)
    assert (unchanged.body, unchanged.validators) == (None, fetched.validators)
    # The strong ETag alone: a list's date may not move when a record is deleted.
    sent = route.calls.last.request.headers
    assert sent["if-none-match"] == '"v1"' and "if-modified-since" not in sent
    client.fetch_certifications(Validators(None, dated["Last-Modified"]))
    assert route.calls.last.request.headers["if-modified-since"] == dated["Last-Modified"]


@pytest.mark.parametrize(
    ("headers", "kept"),
    [
        ({"ETag": 'W/"v1"'}, Validators()),  # equivalent, not the same bytes
        ({"ETag": '"v1"'}, Validators('"v1"')),
        # A body changed twice in one second keeps its date: only an older one validates.
        ({"Last-Modified": HTTP_NOW, "Date": HTTP_NOW}, Validators()),
        ({"Last-Modified": "Mon, 30 Nov 2026 08:59:59 GMT"}, Validators()),  # no Date
        ({"Last-Modified": "yesterday", "Date": HTTP_NOW}, Validators()),
        (
            {"Last-Modified": "Mon, 30 Nov 2026 08:59:59 GMT", "Date": HTTP_NOW},
            Validators(None, "Mon, 30 Nov 2026 08:59:59 GMT"),
        ),
    ],
)
def test_only_validators_that_tell_bodies_apart_are_kept(
    headers: dict[str, str], kept: Validators
) -> None:
    assert Validators.of(httpx.Headers(headers)) == kept


@respx.mock
def test_a_304_nobody_asked_for_fails_the_pull(make_http: Callable[..., ApiHttp]) -> None:
    respx.get(URL).mock(return_value=httpx.Response(304))
    with pytest.raises(CertsyncError):
        NatecosmicClient(make_http("natecosmic", NATECOSMIC)).fetch_certifications(None)


@respx.mock
def test_the_same_bytes_again_are_unchanged_without_any_validator(tmp_path: Path) -> None:
    """A Natecosmic that gives no validator: the body's SHA-256 tells the same bytes, which
    are then not decoded unless the cycle needs them; other bytes are a new pull."""
    settings = mocked_api_settings(tmp_path, '[[types]]\nnatecosmic = "x"\nmonotree = 1\n')
    store = Store(settings.database_url)
    store.upgrade()
    route = respx.get(URL).mock(return_value=httpx.Response(200, json={"data": [record()]}))
    with open_clients(settings) as clients:
        first = pull_certifications(store, clients)
        assert not first.unchanged and len(first.pull.records) == 1
        store.snapshots.save(first.pull.records, made_from=first.made_from)
        again = pull_certifications(store, clients)
        assert again.unchanged and again.made_from == first.made_from
        again.close()
        route.mock(return_value=httpx.Response(200, json={"data": [record(id="other")]}))
        other = pull_certifications(store, clients)
    store.close()
    assert not other.unchanged and [r.id for r in other.pull.records] == ["other"]
    assert all("if-none-match" not in c.request.headers for c in route.calls)


@respx.mock
def test_a_snapshot_another_release_rewrote_is_not_asked_for_by_its_validators(
    tmp_path: Path,
) -> None:
    """A release before `MadeFrom` rewrites the snapshot and leaves the stored validators
    stale: they are not sent (a 304 would stand for a snapshot of another body)."""
    settings = mocked_api_settings(tmp_path, '[[types]]\nnatecosmic = "x"\nmonotree = 1\n')
    store = Store(settings.database_url)
    store.upgrade()
    older = parse_record(0, record(id="older"))
    assert isinstance(older, CertificationRecord)
    store.snapshots.save([older], made_from=MadeFrom(NATECOSMIC, "00" * 32, '"v1"'))
    with store.engine.begin() as conn:  # rewritten as a release before it would: at its time
        conn.execute(
            text(
                "UPDATE pull_snapshot SET document = :b, pulled_at = '2026-01-02 03:04:05.000006'"
            ),
            {"b": zlib.compress(b'["older"]')},
        )
    route = respx.get(URL).mock(return_value=httpx.Response(200, json={"data": [record(id="now")]}))
    with open_clients(settings) as clients:
        pulled = pull_certifications(store, clients)
    store.close()
    assert [r.id for r in pulled.pull.records] == ["now"] and not pulled.unchanged
    assert "if-none-match" not in route.calls.last.request.headers
