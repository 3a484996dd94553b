"""Reading the holders of many templates: pages side by side, every page once, no partial read."""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import respx

from certsync.clients.holders import read_holders
from certsync.clients.http import ApiHttp
from certsync.clients.monotree import MonotreeClient
from certsync.errors import AuthError, ResponseFormatError
from tests.conftest import MONOTREE
from tests.test_monotree import holder

API = f"{MONOTREE}/api/open/v1"
NOW = datetime(2026, 11, 23, tzinfo=UTC)
HOLDERS = re.compile(rf"{re.escape(API)}/certificates/\d+/users")


def envelope(
    cert: int, items: list[Any], page: int, last: int, *, numbers: bool = True
) -> dict[str, Any]:
    url = f"{API}/certificates/{cert}/users"
    body: dict[str, Any] = {
        "data": items,
        "links": {"next": f"{url}?page={page + 1}&per_page=50" if page < last else None},
    }
    if numbers:
        body["meta"] = {"current_page": page, "last_page": last, "per_page": 50}
    return body


def server(
    pages: dict[int, int], *, numbers: bool = True, delay: float = 0.0
) -> tuple[Callable[[httpx.Request], httpx.Response], Counter[tuple[int, int]], list[int]]:
    """Templates with `pages[cert]` pages, two holders a page (user ids cert*1000+page*10+k);
    counts each (cert, page) asked and the most requests in flight at once."""
    asked: Counter[tuple[int, int]] = Counter()
    peak = [0, 0]  # in flight now, most at once
    lock = threading.Lock()

    def answer(request: httpx.Request) -> httpx.Response:
        cert = int(request.url.path.split("/")[-2])
        page = int(request.url.params.get("page", "1"))
        with lock:
            asked[(cert, page)] += 1
            peak[0] += 1
            peak[1] = max(peak)
        try:
            time.sleep(delay)
            if cert not in pages:
                return httpx.Response(404, json={"message": "Not found."})
            items = [holder(cert * 1000 + page * 10 + k) for k in range(2)]
            return httpx.Response(
                200, json=envelope(cert, items, page, pages[cert], numbers=numbers)
            )
        finally:
            with lock:
                peak[0] -= 1

    return answer, asked, peak


@pytest.fixture
def client(make_http: Callable[..., ApiHttp]) -> MonotreeClient:
    return MonotreeClient(make_http())


def users(holdings: dict[int, Any]) -> list[int]:
    return sorted(holdings)


@respx.mock
def test_the_pages_of_one_large_template_are_read_side_by_side(client: MonotreeClient) -> None:
    """After the first page says there are 9, the other 8 go out 4 at a time; each page once."""
    answer, asked, peak = server({12: 9}, delay=0.05)
    respx.get(HOLDERS).mock(side_effect=answer)
    holdings, missing = read_holders(client, [12], concurrency=4, now=NOW)
    assert missing == []
    assert users(holdings[12]) == [12000 + p * 10 + k for p in range(1, 10) for k in range(2)]
    assert asked == Counter({(12, p): 1 for p in range(1, 10)})
    assert peak[1] == 4


@respx.mock
def test_many_templates_share_the_slots_and_a_missing_one_is_reported(
    client: MonotreeClient,
) -> None:
    """Templates of 3 and 1 pages are read whole; a 404 template is reported, not raised."""
    answer, asked, _ = server({12: 3, 13: 1})
    respx.get(HOLDERS).mock(side_effect=answer)
    holdings, missing = read_holders(client, [12, 13, 14], concurrency=4, now=NOW)
    assert missing == [14]
    assert sorted(holdings) == [12, 13]
    assert len(holdings[12]) == 6 and len(holdings[13]) == 2
    assert sum(asked.values()) == 5


@respx.mock
def test_without_page_numbers_the_links_are_followed_and_no_page_is_read_twice(
    client: MonotreeClient,
) -> None:
    """A server whose envelope has no meta is read by its next links, one page after another."""
    answer, asked, peak = server({12: 4}, numbers=False, delay=0.01)
    respx.get(HOLDERS).mock(side_effect=answer)
    holdings, _ = read_holders(client, [12], concurrency=4, now=NOW)
    assert len(holdings[12]) == 8
    assert asked == Counter({(12, p): 1 for p in range(1, 5)})
    assert peak[1] == 1


@respx.mock
def test_a_server_that_ignores_the_page_number_is_refused(client: MonotreeClient) -> None:
    """If page 2 comes back as page 1 again, the read fails instead of missing holders."""
    respx.get(HOLDERS).mock(return_value=httpx.Response(200, json=envelope(12, [holder(1)], 1, 2)))
    with pytest.raises(ResponseFormatError, match=r"asked for page 2 .* was sent page 1"):
        read_holders(client, [12], concurrency=4, now=NOW)


@respx.mock
def test_a_list_that_grows_while_it_is_read_is_read_to_its_new_end(
    client: MonotreeClient,
) -> None:
    """Page 1 says 2 pages, page 2 says 3: page 3 is read too."""
    bodies = {
        1: envelope(12, [holder(1)], 1, 2),
        2: envelope(12, [holder(2)], 2, 3),
        3: envelope(12, [holder(3)], 3, 3),
    }
    route = respx.get(HOLDERS).mock(
        side_effect=lambda r: httpx.Response(200, json=bodies[int(r.url.params["page"])])
    )
    holdings, _ = read_holders(client, [12], concurrency=4, now=NOW)
    assert users(holdings[12]) == [1, 2, 3]
    assert route.call_count == 3


@respx.mock
def test_a_user_on_two_pages_keeps_the_active_entry(client: MonotreeClient) -> None:
    """A list that shifted between pages may show a user twice: the active, latest entry wins."""
    bodies = {
        1: envelope(12, [holder(5, issued="2026-07-01")], 1, 2),
        2: envelope(12, [holder(5, issued="2025-01-01", expired=True), holder(6)], 2, 2),
    }
    respx.get(HOLDERS).mock(
        side_effect=lambda r: httpx.Response(200, json=bodies[int(r.url.params["page"])])
    )
    holdings, _ = read_holders(client, [12], concurrency=4, now=NOW)
    kept = holdings[12][5]
    assert kept.active and kept.issued_on is not None and kept.issued_on.isoformat() == "2026-07-01"


@respx.mock
def test_a_failed_page_fails_the_whole_read(client: MonotreeClient) -> None:
    """No partial result: a 401 on a later page is raised."""
    route = respx.get(HOLDERS).mock(
        side_effect=lambda r: (
            httpx.Response(200, json=envelope(12, [holder(1)], 1, 3))
            if r.url.params["page"] == "1"
            else httpx.Response(401, json={"message": "Unauthenticated."})
        )
    )
    with pytest.raises(AuthError):
        read_holders(client, [12], concurrency=4, now=NOW)
    assert route.call_count >= 2


@respx.mock
def test_an_abandoned_read_asks_for_nothing_more(client: MonotreeClient) -> None:
    """Once the caller has failed (the pull broke), no further page is asked for."""
    route = respx.get(HOLDERS).mock(return_value=httpx.Response(200, json=envelope(12, [], 1, 1)))
    abandon = threading.Event()
    abandon.set()
    read_holders(client, [12, 13], concurrency=4, now=NOW, abandon=abandon)
    assert route.call_count == 0
