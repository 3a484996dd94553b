"""The shared HTTP layer: retries, Retry-After, pacing, error translation, limits."""

from __future__ import annotations

import threading
from collections.abc import Callable
from email.utils import formatdate

import httpx
import pytest
import respx

from certsync.cli import exit_codes
from certsync.clients.http import ApiHttp
from certsync.clients.pacing import Pacer, RateBudget
from certsync.clients.retry import Timing, backoff_delay, parse_retry_after
from certsync.errors import (
    AuthError,
    ForbiddenError,
    NotFoundError,
    OutcomeUnknownError,
    RejectedError,
    ResponseFormatError,
    RetriableError,
)
from tests.conftest import M_TOKEN, MONOTREE, FakeTime

URL = f"{MONOTREE}/api/open/v1/certificates/12"
Make = Callable[..., ApiHttp]
ASSIGN = f"{MONOTREE}/api/open/v1/certificates/assign"


@respx.mock
def test_429_with_retry_after_waits_then_succeeds(make_http: Make, fake_time: FakeTime) -> None:
    """A 429 with `Retry-After: 2` makes the client wait two seconds, then it succeeds."""
    route = respx.get(URL).mock(
        side_effect=[
            httpx.Response(
                429, headers={"Retry-After": "2"}, json={"message": "Too Many Attempts."}
            ),
            httpx.Response(200, json={"data": {"id": 12}}),
        ]
    )
    body = make_http().request("GET", URL, scope="read:certificates")
    assert body == {"data": {"id": 12}}
    assert route.call_count == 2
    assert fake_time.sleeps == [2.0]


@respx.mock
@pytest.mark.parametrize("value", ["\u00b2", "\u0661\u0662", "12abc", ""])
def test_a_strange_rate_limit_header_is_ignored(make_http: Make, value: str) -> None:
    """Whatever a remaining-requests header holds (a superscript two passes `isdigit`
    and fails `int`), the answer is read, never a traceback."""
    respx.get(URL).mock(
        return_value=httpx.Response(
            200,
            headers=[(b"x-ratelimit-remaining", value.encode())],
            json={"data": {"id": 12}},
        )
    )
    assert make_http().request("GET", URL, scope="read:certificates") == {"data": {"id": 12}}


@respx.mock
def test_retry_after_as_http_date_is_honoured(make_http: Make, fake_time: FakeTime) -> None:
    """`Retry-After` given as an HTTP date waits until that moment."""
    date = formatdate(fake_time.now + 5, usegmt=True)
    respx.get(URL).mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": date}),
            httpx.Response(200, json={}),
        ]
    )
    make_http().request("GET", URL, scope="read:certificates")
    assert fake_time.sleeps == [pytest.approx(5.0, abs=1.0)]


@respx.mock
def test_503_burst_then_success(make_http: Make, fake_time: FakeTime) -> None:
    """Three 503s in a row are retried with growing backoff; the fourth answer wins."""
    route = respx.get(URL).mock(
        side_effect=[httpx.Response(503)] * 3 + [httpx.Response(200, json={"ok": True})]
    )
    http = make_http(backoff_base=0.5, backoff_max=30)
    assert http.request("GET", URL, scope="read:certificates") == {"ok": True}
    assert route.call_count == 4
    assert fake_time.sleeps == [0.5, 1.0, 2.0]  # full jitter with rand() pinned at 1.0
    assert http.counter.retries["monotree"] == 3


@respx.mock
def test_retries_give_up_after_the_bound_with_a_clear_error(make_http: Make) -> None:
    """A server that keeps failing is tried max_attempts times, then named in the error."""
    route = respx.get(URL).mock(return_value=httpx.Response(500))
    with pytest.raises(
        RetriableError,
        match=r"monotree: GET /api/open/v1/certificates/12 gave up after 3 attempt\(s\)",
    ):
        make_http(max_attempts=3).request("GET", URL, scope="read:certificates")
    assert route.call_count == 3


@respx.mock
def test_total_retry_time_is_bounded(make_http: Make, fake_time: FakeTime) -> None:
    """A Retry-After longer than the retry budget gives up at once instead of waiting."""
    respx.get(URL).mock(return_value=httpx.Response(429, headers={"Retry-After": "600"}))
    with pytest.raises(RetriableError, match="429"):
        make_http(max_retry_seconds=60).request("GET", URL, scope="read:certificates")
    assert fake_time.sleeps == []


@respx.mock
def test_connect_timeout_is_retried_then_reported(make_http: Make) -> None:
    """Connect timeouts are network errors: retried, then a RetriableError naming the timeout."""
    route = respx.get(URL).mock(side_effect=httpx.ConnectTimeout("boom"))
    with pytest.raises(RetriableError, match="timeout"):
        make_http(max_attempts=2).request("GET", URL, scope="read:certificates")
    assert route.call_count == 2


@respx.mock
def test_read_timeout_on_a_write_means_outcome_unknown(make_http: Make) -> None:
    """A write whose answer timed out may have taken effect: the error says the outcome is unknown."""
    respx.post(f"{MONOTREE}/api/open/v1/certificates/assign").mock(
        side_effect=httpx.ReadTimeout("slow")
    )
    with pytest.raises(OutcomeUnknownError):
        make_http(max_attempts=2).request(
            "POST",
            f"{MONOTREE}/api/open/v1/certificates/assign",
            json_body={},
            scope="write:certificates",
        )


@respx.mock
def test_401_and_403_are_distinct_and_name_api_and_scope(make_http: Make) -> None:
    """401 is an AuthError naming the API; 403 a ForbiddenError naming the missing scope."""
    respx.get(URL).mock(return_value=httpx.Response(401, json={"message": "Unauthenticated."}))
    with pytest.raises(AuthError) as auth:
        make_http().request("GET", URL, scope="read:certificates")
    assert not isinstance(auth.value, ForbiddenError)
    assert "monotree" in str(auth.value) and "401" in str(auth.value)
    assert exit_codes.for_error(auth.value) == exit_codes.EXIT_CONFIG

    respx.get(URL).mock(
        return_value=httpx.Response(403, json={"message": "This action is unauthorized."})
    )
    with pytest.raises(ForbiddenError) as forbidden:
        make_http().request("GET", URL, scope="read:certificates")
    assert forbidden.value.scope == "read:certificates"
    assert "monotree" in str(forbidden.value) and "read:certificates" in str(forbidden.value)


@respx.mock
def test_422_carries_the_servers_message(make_http: Make) -> None:
    """A validation error is not retried and keeps Monotree's own words."""
    route = respx.post(f"{MONOTREE}/x").mock(
        return_value=httpx.Response(
            422,
            json={
                "message": "The given data was invalid.",
                "errors": {"assignments.0.users.0.user_id": ["The selected user id is invalid."]},
            },
        )
    )
    with pytest.raises(RejectedError, match="selected user id is invalid"):
        make_http().request("POST", f"{MONOTREE}/x", json_body={}, scope="write:certificates")
    assert route.call_count == 1


@respx.mock
def test_404_is_not_found(make_http: Make) -> None:
    """404 becomes NotFoundError and is not retried."""
    route = respx.get(URL).mock(return_value=httpx.Response(404))
    with pytest.raises(NotFoundError):
        make_http().request("GET", URL, scope="read:certificates")
    assert route.call_count == 1


@respx.mock
def test_html_with_status_200_is_an_error(make_http: Make) -> None:
    """A 200 answer that is an HTML page is a ResponseFormatError, never an empty result."""
    respx.get(URL).mock(
        return_value=httpx.Response(200, html="<html><body>Maintenance</body></html>")
    )
    with pytest.raises(ResponseFormatError, match="not JSON"):
        make_http().request("GET", URL, scope="read:certificates")


@respx.mock
def test_response_over_the_size_limit_is_refused(make_http: Make) -> None:
    """A body larger than max_response_bytes is refused with the setting's name."""
    respx.get(URL).mock(return_value=httpx.Response(200, content=b"[" + b"1," * 5000 + b"1]"))
    with pytest.raises(ResponseFormatError, match="MAX_RESPONSE_BYTES"):
        make_http(max_response_bytes=2048).request("GET", URL, scope="read:certificates")


@respx.mock
def test_bearer_token_is_sent_and_counted(make_http: Make) -> None:
    """Every request carries the bearer token and is counted by API, method and status."""
    route = respx.get(URL).mock(return_value=httpx.Response(200, json={}))
    http = make_http()
    http.request("GET", URL, scope="read:certificates")
    assert route.calls.last.request.headers["Authorization"] == f"Bearer {M_TOKEN}"
    assert http.counter.snapshot() == {"monotree GET 200": 1}
    assert M_TOKEN not in repr(http)


def test_links_to_another_origin_are_refused(make_http: Make) -> None:
    """A pagination link to another host is refused, so the token never leaves for it."""
    with pytest.raises(ResponseFormatError, match="another origin"):
        make_http().check_same_origin("https://evil.example.com/api/open/v1/certificates?page=2")


def test_the_rate_budget_is_arithmetic_on_the_servers_headers() -> None:
    """The pure part of pacing: no clock, no sleep, no thread; times are plain numbers."""
    budget = RateBudget()
    assert budget.delay(1000.0) == 0  # the window is unknown: one request goes alone
    budget.take(1000.0)
    assert budget.waiting_for_probe  # and the next waits for its answer
    budget.answered({"x-ratelimit-remaining": "1", "x-ratelimit-reset": "30"}, 1000.0)
    assert not budget.waiting_for_probe and budget.delay(1000.0) == 0
    budget.take(1000.0)  # the last one of the window
    assert budget.delay(1001.0) == pytest.approx(29.05)  # reset at 1030, a small margin after
    assert budget.delay(1030.0) == 0  # a new window, unknown again

    headerless = RateBudget()
    headerless.take(0.0)
    headerless.answered({}, 0.0)
    headerless.take(0.0)
    assert not headerless.waiting_for_probe  # nothing to learn: no request waits for another


def test_pacer_waits_for_the_window_when_remaining_reaches_zero(fake_time: FakeTime) -> None:
    """With X-RateLimit-Remaining at 0, the next request waits until X-RateLimit-Reset."""
    pacer = Pacer(clock=fake_time.clock, sleep=fake_time.sleep)
    pacer.acquire()
    reset = fake_time.now + 30
    pacer.release({"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)})
    pacer.acquire()
    assert fake_time.sleeps and fake_time.sleeps[0] == pytest.approx(30, abs=0.1)


def test_pacer_counts_its_own_requests_within_a_window(fake_time: FakeTime) -> None:
    """Requests let through are counted locally, so a burst cannot overrun the remaining budget."""
    reset = fake_time.now + 60
    headers = {"x-ratelimit-remaining": "2", "x-ratelimit-reset": str(reset)}
    in_flight: list[None] = []

    def answers_arrive_while_waiting(seconds: float) -> None:
        fake_time.sleep(seconds)
        while in_flight:
            in_flight.pop()
            pacer.release({"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)})

    pacer = Pacer(clock=fake_time.clock, sleep=answers_arrive_while_waiting)
    pacer.acquire()
    pacer.release(headers)
    pacer.acquire()
    pacer.acquire()
    in_flight += [None, None]
    assert fake_time.sleeps == []
    pacer.acquire()  # a third would exceed what the server said remains
    assert fake_time.sleeps == [pytest.approx(60, abs=0.1)]


def test_requests_per_minute_cap(fake_time: FakeTime) -> None:
    """An optional client-side cap spreads requests so no 60-second span holds more than the cap."""
    pacer = Pacer(max_per_minute=3, clock=fake_time.clock, sleep=fake_time.sleep)
    for _ in range(4):
        pacer.acquire()
        pacer.release(None)
    assert len(fake_time.sleeps) == 1
    assert fake_time.sleeps[0] == pytest.approx(60, abs=0.1)


def test_retry_after_parsing() -> None:
    """Retry-After: seconds, HTTP dates, garbage and negative values."""
    assert parse_retry_after("3", now=0) == 3.0
    assert parse_retry_after("Thu, 01 Jan 1970 00:00:10 GMT", now=4) == pytest.approx(6.0)
    assert parse_retry_after("soon", now=0) is None
    assert parse_retry_after("-5", now=0) == 0.0
    assert parse_retry_after(None, now=0) is None


def test_backoff_has_full_jitter_and_a_cap() -> None:
    """Backoff is uniform in [0, min(cap, base*2^n)]."""
    assert backoff_delay(0, base=1, cap=10, rand=lambda: 1.0) == 1.0
    assert backoff_delay(3, base=1, cap=10, rand=lambda: 1.0) == 8.0
    assert backoff_delay(10, base=1, cap=10, rand=lambda: 1.0) == 10.0
    assert backoff_delay(10, base=1, cap=10, rand=lambda: 0.25) == 2.5


@respx.mock
def test_a_stop_between_attempts_of_a_write_that_may_have_landed_is_outcome_unknown(
    make_http: Make, fake_time: FakeTime
) -> None:
    """A 502 on an assign, then SIGTERM during the backoff: not "failed", but "unknown",
    so the ownership recorded before the call is kept."""
    stop = threading.Event()
    http = make_http()
    http.pacer = Pacer(clock=fake_time.clock, sleep=fake_time.sleep, stop=stop)
    # SIGTERM lands during the backoff: the next attempt's pacer refuses to send.
    http.timing = Timing(sleep=lambda _s: stop.set(), clock=fake_time.clock)
    route = respx.post(ASSIGN).mock(return_value=httpx.Response(502))
    with pytest.raises(OutcomeUnknownError, match="stopped before retrying"):
        http.request("POST", ASSIGN, scope="write:certificates", json_body={})
    assert route.call_count == 1
