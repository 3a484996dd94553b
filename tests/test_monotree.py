"""The Monotree client against respx: every endpoint, and pagination in all its forms."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime

import httpx
import pytest
import respx

from certsync.clients.holders import holdings_of
from certsync.clients.http import ApiHttp
from certsync.clients.monotree import MonotreeClient, parse_holder
from certsync.errors import OutcomeUnknownError, ResponseFormatError
from certsync.writes import AssignItem
from tests.conftest import MONOTREE

API = f"{MONOTREE}/api/open/v1"
Make = Callable[..., ApiHttp]

TEMPLATE = {
    "id": 12,
    "title": "Food Safety",
    "description": "Awarded on completion of the food safety course.",
    "validity_months": 12,
    "reset_days_before_expiry": 30,
    "active_users_count": 14,
    "is_published": True,
    "certificate_type": {"id": 3, "title": "Compliance", "is_published": True},
    "published_at": "2026-06-01T10:00:00+00:00",
    "created_at": "2026-06-01T10:00:00+00:00",
    "updated_at": "2026-06-01T10:00:00+00:00",
}


def holder(uid: int, issued: str = "2026-06-01", expired: bool = False) -> dict[str, object]:
    return {
        "id": uid,
        "name": f"User {uid}",
        "email": f"u{uid}@example.com",
        "user_state": {
            "has_certificate": True,
            "issued_at": f"{issued}T00:00:00+00:00",
            "expires_at": "2027-06-01T00:00:00+00:00",
            "is_expired": expired,
            "completables": [],
            "history": [],
        },
    }


def page(data: list[object], n: int, last: int, *, links: bool = True) -> dict[str, object]:
    body: dict[str, object] = {
        "data": data,
        "meta": {"current_page": n, "last_page": last, "per_page": 50, "total": 0},
    }
    if links:
        body["links"] = {
            "first": f"{API}/certificates/12/users?page=1&per_page=50",
            "last": f"{API}/certificates/12/users?page={last}&per_page=50",
            "prev": None,
            "next": f"{API}/certificates/12/users?page={n + 1}&per_page=50" if n < last else None,
        }
    return body


@pytest.fixture
def client(make_http: Make) -> MonotreeClient:
    return MonotreeClient(make_http())


@respx.mock
def test_three_pages_by_links_next(client: MonotreeClient) -> None:
    """A 3-page holder list is read by following links.next, always with per_page=50."""
    route = respx.get(f"{API}/certificates/12/users").mock(
        side_effect=lambda request: httpx.Response(
            200,
            json=page(
                [holder(int(request.url.params["page"]) * 100)], int(request.url.params["page"]), 3
            ),
        )
    )
    holders = client.list_holders(12)
    assert [h.user_id for h in holders] == [100, 200, 300]
    assert route.call_count == 3
    assert all(c.request.url.params["per_page"] == "50" for c in route.calls)


@respx.mock
def test_pages_by_meta_last_page_when_links_are_missing(client: MonotreeClient) -> None:
    """Without links, meta.last_page drives the reader."""
    route = respx.get(f"{API}/certificates/12/users").mock(
        side_effect=lambda request: httpx.Response(
            200,
            json=page(
                [holder(int(request.url.params["page"]))],
                int(request.url.params["page"]),
                2,
                links=False,
            ),
        )
    )
    assert [h.user_id for h in client.list_holders(12)] == [1, 2]
    assert route.call_count == 2


@respx.mock
def test_an_empty_page_ends_the_read(client: MonotreeClient) -> None:
    """An empty page stops the reader even if the envelope promises more."""
    route = respx.get(f"{API}/certificates/12/users").mock(
        side_effect=[
            httpx.Response(200, json=page([holder(1)], 1, 5)),
            httpx.Response(200, json=page([], 2, 5)),
        ]
    )
    assert [h.user_id for h in client.list_holders(12)] == [1]
    assert route.call_count == 2


@respx.mock
def test_a_repeated_next_link_does_not_loop(client: MonotreeClient) -> None:
    """A server that hands back the same next link twice is caught, not followed forever."""
    same = {
        "data": [holder(1)],
        "links": {"next": f"{API}/certificates/12/users?page=2&per_page=50"},
        "meta": {"current_page": 1, "last_page": 9},
    }
    route = respx.get(f"{API}/certificates/12/users").mock(
        return_value=httpx.Response(200, json=same)
    )
    with pytest.raises(ResponseFormatError, match="back to a page it read"):
        client.list_holders(12)
    assert route.call_count == 2


@respx.mock
def test_a_body_without_data_is_an_error(client: MonotreeClient) -> None:
    """A list answer without the data envelope is refused."""
    respx.get(f"{API}/certificates").mock(return_value=httpx.Response(200, json={"items": []}))
    with pytest.raises(ResponseFormatError, match="page envelope"):
        client.list_templates()


@respx.mock
def test_list_templates_with_filters(client: MonotreeClient) -> None:
    """Template filters are passed through; templates are typed."""
    route = respx.get(f"{API}/certificates").mock(
        return_value=httpx.Response(200, json={**page([TEMPLATE], 1, 1), "links": {"next": None}})
    )
    templates = client.list_templates(is_published=True, title="Food", since="2026-01-01")
    assert templates[0].id == 12 and templates[0].validity_months == 12
    assert templates[0].certificate_type is not None and templates[0].certificate_type.id == 3
    params = route.calls.last.request.url.params
    assert (params["is_published"], params["title"], params["since"]) == (
        "true",
        "Food",
        "2026-01-01",
    )
    assert params["per_page"] == "50"


@respx.mock
def test_get_create_update_delete_template(client: MonotreeClient) -> None:
    """Get, create (draft by default), PUT and PATCH partial updates, soft delete with 204."""
    respx.get(f"{API}/certificates/12").mock(
        return_value=httpx.Response(200, json={"data": TEMPLATE})
    )
    assert client.get_template(12).title == "Food Safety"

    create = respx.post(f"{API}/certificates").mock(
        return_value=httpx.Response(
            201, json={"data": {**TEMPLATE, "id": 13, "is_published": False}}
        )
    )
    created = client.create_template(title="Food Safety", validity_months=12)
    assert created.id == 13
    assert json.loads(create.calls.last.request.content) == {
        "title": "Food Safety",
        "is_published": False,
        "validity_months": 12,
    }

    patch = respx.patch(f"{API}/certificates/13").mock(
        return_value=httpx.Response(200, json={"data": {**TEMPLATE, "id": 13}})
    )
    client.update_template(13, {"is_published": True})
    assert json.loads(patch.calls.last.request.content) == {"is_published": True}
    put = respx.put(f"{API}/certificates/13").mock(
        return_value=httpx.Response(200, json={"data": {**TEMPLATE, "id": 13, "title": "New"}})
    )
    assert client.update_template(13, {"title": "New"}, method="PUT").title == "New"
    assert put.called
    with pytest.raises(ValueError, match="not a template field"):
        client.update_template(13, {"colour": "red"})

    delete = respx.delete(f"{API}/certificates/13").mock(return_value=httpx.Response(204))
    client.delete_template(13)
    assert delete.called


@respx.mock
def test_assign_carries_many_certificates_and_users_in_one_body(client: MonotreeClient) -> None:
    """One assign request groups users under each certificate, dates as ISO days."""
    route = respx.post(f"{API}/certificates/assign").mock(return_value=httpx.Response(204))
    client.assign(
        [
            AssignItem(12, 501, date(2026, 6, 1)),
            AssignItem(12, 502, date(2026, 6, 2)),
            AssignItem(14, 501, date(2026, 5, 1)),
        ]
    )
    assert json.loads(route.calls.last.request.content) == {
        "assignments": [
            {
                "certificate_id": 12,
                "users": [
                    {"user_id": 501, "completed_at": "2026-06-01"},
                    {"user_id": 502, "completed_at": "2026-06-02"},
                ],
            },
            {"certificate_id": 14, "users": [{"user_id": 501, "completed_at": "2026-05-01"}]},
        ]
    }


@respx.mock
def test_reset_with_and_without_user_ids(client: MonotreeClient) -> None:
    """Reset sends user_ids, expire and notify; without user_ids it targets every holder."""
    route = respx.post(f"{API}/certificates/12/reset").mock(return_value=httpx.Response(204))
    client.reset(12, user_ids=[501], expire=True, notify=False)
    assert json.loads(route.calls.last.request.content) == {
        "user_ids": [501],
        "expire": True,
        "notify": False,
    }
    client.reset(12)
    assert json.loads(route.calls.last.request.content) == {"expire": False, "notify": False}


@respx.mock
def test_user_certificates_and_users(client: MonotreeClient) -> None:
    """A user's certificates, one of them, the users list and one user."""
    cert = {
        "id": 12,
        "title": "Food Safety",
        "validity_months": 12,
        "issued_at": "2026-06-01T00:00:00+00:00",
        "expires_at": "2027-06-01T00:00:00+00:00",
        "is_expired": False,
        "history": [],
    }
    respx.get(f"{API}/users/501/certificates").mock(
        return_value=httpx.Response(200, json={"data": [cert], "links": {"next": None}, "meta": {}})
    )
    respx.get(f"{API}/users/501/certificates/12").mock(
        return_value=httpx.Response(200, json={"data": cert})
    )
    user = {
        "id": 501,
        "name": "Jo",
        "email": "jo@example.com",
        "groups": [{"id": 1, "name": "Kitchen"}],
    }
    users = respx.get(f"{API}/users").mock(
        return_value=httpx.Response(200, json={"data": [user], "links": {"next": None}, "meta": {}})
    )
    respx.get(f"{API}/users/501").mock(return_value=httpx.Response(200, json={"data": user}))

    assert client.user_certificates(501)[0].expires_at == datetime(2027, 6, 1, tzinfo=UTC)
    assert client.user_certificate(501, 12).id == 12
    assert client.list_users(group_id=7)[0].email == "jo@example.com"
    assert users.calls.last.request.url.params["group_id"] == "7"
    assert client.get_user(501).name == "Jo"


def test_holder_id_from_id_or_user_id() -> None:
    """The holder's user id is read from `id` (a user object) or `user_id`."""
    assert parse_holder({"id": 7, "user_state": {}}).user_id == 7
    assert parse_holder({"user_id": 8}).user_id == 8
    with pytest.raises(ResponseFormatError):
        parse_holder({"name": "nobody"})


def test_a_holder_is_active_only_with_the_certificate_and_unexpired() -> None:
    """is_expired, a past expires_at, or has_certificate false all make a holder inactive."""
    now = datetime(2026, 11, 1, tzinfo=UTC)
    active = parse_holder(holder(1)).holding(12, now)
    assert active.active and active.issued_on == date(2026, 6, 1)
    assert not parse_holder(holder(2, expired=True)).holding(12, now).active
    past = holder(3)
    past["user_state"]["expires_at"] = "2026-10-01T00:00:00+00:00"  # type: ignore[index]
    assert not parse_holder(past).holding(12, now).active
    none = holder(4)
    none["user_state"]["has_certificate"] = False  # type: ignore[index]
    assert not parse_holder(none).holding(12, now).active
    # Listed twice: the active entry wins.
    merged = holdings_of([parse_holder(holder(5, expired=True)), parse_holder(holder(5))], 12, now)
    assert merged[5].active


@respx.mock
def test_creating_a_template_is_never_repeated_once_it_may_have_landed(
    client: MonotreeClient,
) -> None:
    """A second POST would make a second template: a 502 ends it as outcome unknown,
    while a 429 (refused, nothing made) is waited out and sent again."""
    create = respx.post(f"{API}/certificates").mock(return_value=httpx.Response(502))
    with pytest.raises(OutcomeUnknownError):
        client.create_template(title="Fire Warden")
    assert create.call_count == 1

    create.side_effect = [
        httpx.Response(429, headers={"Retry-After": "0"}),
        httpx.Response(201, json={"data": {**TEMPLATE, "id": 14, "title": "Fire Warden"}}),
    ]
    assert client.create_template(title="Fire Warden").id == 14
    assert create.call_count == 3
