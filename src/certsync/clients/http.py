"""What both API clients share: retries, Retry-After, pacing, error mapping, counting, redaction.

This is the only module that touches httpx exceptions and status codes. Above
it, callers get parsed JSON or an error from `certsync.errors`.
"""

from __future__ import annotations

import email.utils
import json
import math
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import structlog

from certsync.clients.credentials import Credential
from certsync.errors import (
    ApiError,
    AuthError,
    EndpointNotFoundError,
    ForbiddenError,
    NotFoundError,
    OutcomeUnknownError,
    RejectedError,
    ResponseFormatError,
    RetriableError,
    StopRequested,
)
from certsync.redaction import REDACTOR
from certsync.settings import ClientSettings

log = structlog.get_logger("certsync.clients.http")

Sleep = Callable[[float], None]
Clock = Callable[[], float]


# --- counting -------------------------------------------------------------------


class RequestCounter:
    """Counts requests by API, method and status; thread-safe; read by report, bench and metrics."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str, str]] = Counter()
        self.retries: Counter[str] = Counter()
        self.observers: list[Callable[[str, str, str], None]] = []
        self.retry_observers: list[Callable[[str], None]] = []

    def record(self, api: str, method: str, status: int | str) -> None:
        key = (api, method, str(status))
        with self._lock:
            self._counts[key] += 1
        for observe in self.observers:
            observe(*key)

    def record_retry(self, api: str) -> None:
        with self._lock:
            self.retries[api] += 1
        for observe in self.retry_observers:
            observe(api)

    def snapshot(self) -> dict[str, int]:
        """`{"monotree GET 200": 3, ...}`, sorted for stable output."""
        with self._lock:
            return {" ".join(k): v for k, v in sorted(self._counts.items())}

    def total(self, api: str | None = None, method: str | None = None) -> int:
        with self._lock:
            return sum(
                n
                for (a, m, _), n in self._counts.items()
                if (api is None or a == api) and (method is None or m == method)
            )


# --- pacing ---------------------------------------------------------------------


def _header_float(headers: Mapping[str, str], name: str) -> float | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


class Pacer:
    """Keeps a client under the server's rate limit, and under an optional cap of its own.

    It trusts `X-RateLimit-Remaining` and `X-RateLimit-Reset` (a Unix time; a
    small number is read as seconds from now) and counts the requests it lets
    through itself, so several threads cannot all spend the last request of a
    window at once.
    """

    _EPOCH_THRESHOLD = 1_000_000_000.0
    _MARGIN = 0.05

    def __init__(
        self,
        *,
        max_per_minute: int | None = None,
        clock: Clock = time.time,
        sleep: Sleep = time.sleep,
        stop: threading.Event | None = None,
    ) -> None:
        self._stop = stop
        self._lock = threading.Lock()
        self._probe_done = threading.Condition(self._lock)
        self._clock = clock
        self._sleep = sleep
        self._cap = max_per_minute
        self._sent: deque[float] = deque()
        self._remaining: float | None = None
        self._reset_at: float | None = None
        self._in_flight = 0
        # A server that never sends rate-limit headers gives nothing to probe for.
        self._headerless = False

    def _delay(self, now: float) -> float:
        delay = 0.0
        if self._reset_at is not None and now >= self._reset_at:
            self._remaining, self._reset_at = None, None
        if self._remaining is not None and self._remaining <= 0:
            reset_at = self._reset_at if self._reset_at is not None else now + 60.0
            self._reset_at = reset_at
            delay = reset_at - now + self._MARGIN
        if self._cap is not None:
            while self._sent and self._sent[0] <= now - 60.0:
                self._sent.popleft()
            if len(self._sent) >= self._cap:
                delay = max(delay, self._sent[0] + 60.0 - now + self._MARGIN)
        return delay

    def acquire(self) -> None:
        """Block until one more request may be sent, and count it as sent.

        While the window is unknown (first request, or the last window has
        ended), one request goes alone: its answer tells what the others may do.
        """
        while True:
            if self._stop is not None and self._stop.is_set():
                raise StopRequested("stopping: no new request is sent")
            with self._lock:
                now = self._clock()
                delay = self._delay(now)
                probing = self._remaining is None and not self._headerless
                if delay <= 0 and probing and self._in_flight > 0:
                    self._probe_done.wait(timeout=0.05)
                    continue
                if delay <= 0:
                    if self._remaining is not None:
                        self._remaining -= 1
                    if self._cap is not None:
                        self._sent.append(now)
                    self._in_flight += 1
                    return
            log.debug("http.paced", wait=round(delay, 3))
            if self._stop is not None:
                self._stop.wait(delay)
            else:
                self._sleep(delay)

    def release(self, headers: Mapping[str, str] | None) -> None:
        """Learn from a response's rate-limit headers (or from a request that got none)."""
        with self._lock:
            self._in_flight = max(0, self._in_flight - 1)
            self._probe_done.notify_all()
            if headers is None:
                return
            remaining = _header_float(headers, "x-ratelimit-remaining")
            reset = _header_float(headers, "x-ratelimit-reset")
            if remaining is None:
                self._headerless = True
                return
            self._headerless = False
            now = self._clock()
            if reset is not None and reset < self._EPOCH_THRESHOLD:
                reset = now + reset
            new_window = reset is not None and (
                self._reset_at is None or reset > self._reset_at + 0.5
            )
            if new_window:
                # Requests still in flight were let through before this answer was
                # counted by the server; assume they land in this same window.
                self._reset_at = reset
                self._remaining = remaining - self._in_flight
            elif self._remaining is None:
                self._remaining = remaining - self._in_flight
            else:
                self._remaining = min(self._remaining, remaining)


# --- retries --------------------------------------------------------------------


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds to wait from a `Retry-After` header: delta-seconds or an HTTP date."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - now
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def backoff_delay(attempt: int, *, base: float, cap: float, rand: Callable[[], float]) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**attempt))."""
    return rand() * min(cap, base * (2.0 ** min(attempt, 30)))


@dataclass(frozen=True)
class _Attempt:
    """Why an attempt failed in a way worth retrying."""

    reason: str
    retry_after: float | None = None
    maybe_applied: bool = False


# --- the client -----------------------------------------------------------------


class ApiHttp:
    """One API's HTTP session: base URL, bearer token, retries, pacing and counting."""

    def __init__(
        self,
        *,
        api: str,
        base_url: str,
        credential: Credential,
        client: httpx.Client,
        settings: ClientSettings,
        counter: RequestCounter | None = None,
        pacer: Pacer | None = None,
        sleep: Sleep = time.sleep,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
        rand: Callable[[], float] = random.random,
        stop: threading.Event | None = None,
    ) -> None:
        self.api = api
        self._stop = stop
        self.base_url = base_url.rstrip("/")
        self._origin = urlsplit(self.base_url)[:2]
        self._host = _host_port(self.base_url)
        parts = urlsplit(self.base_url)
        self._safe_base = f"{parts.scheme}://{self._host}{parts.path}"
        self.credential = credential
        self._client = client
        self._settings = settings
        self.counter = counter if counter is not None else RequestCounter()
        self.pacer = pacer if pacer is not None else Pacer(sleep=sleep)
        self._sleep = sleep
        self._clock = clock
        self._wall_clock = wall_clock
        self._rand = rand

    def __repr__(self) -> str:
        return f"ApiHttp(api={self.api!r}, base_url={self.base_url!r})"

    def url(self, path: str) -> str:
        return self.base_url + path

    def check_same_origin(self, url: str) -> str:
        """A link the server handed back must point at the same origin, or the token would leak."""
        if urlsplit(url)[:2] != self._origin:
            raise ResponseFormatError(
                self.api, f"refusing to follow a link to another origin: {urlsplit(url).netloc}"
            )
        return url

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        scope: str,
        consume: Callable[[Iterator[bytes]], Any] | None = None,
        endpoint: bool = False,
    ) -> Any:
        """Send with retries; return the decoded JSON body (None for an empty body).

        With `consume`, a successful answer's body is handed over as it arrives,
        chunk by chunk, and what `consume` returns is the result: a large list is
        parsed without ever being held whole. A connection lost mid-body is retried.

        Writes are retried like reads: Monotree's assign skips active holders and
        reset with `expire` is idempotent, so a repeat cannot double-apply.

        `endpoint` marks a list that always exists: a 404 there means the base
        URL is wrong, and is reported as such rather than as missing data.
        """
        started = self._clock()
        attempt = 0
        maybe_applied = False
        reloaded = False
        while True:
            attempt += 1
            try:
                outcome = self._attempt(
                    method, url, params=params, json_body=json_body, scope=scope, consume=consume
                )
            except NotFoundError:
                if not endpoint:
                    raise
                raise EndpointNotFoundError(
                    self.api,
                    f"{method} {urlsplit(url).path} answered 404: check "
                    f"CERTSYNC_{self.api.upper()}__BASE_URL (now {self._safe_base}); it is the "
                    "API's origin, certsync adds the path itself",
                    status=404,
                ) from None
            except AuthError as exc:
                # A Secret rotated in place: read the token again, once, before failing.
                if reloaded or exc.status != 401 or not self.credential.reload():
                    raise
                reloaded = True
                log.info("http.token_reloaded", api=self.api, source=self.credential.describe())
                continue
            if not isinstance(outcome, _Attempt):
                return outcome
            maybe_applied = maybe_applied or outcome.maybe_applied
            elapsed = self._clock() - started
            delay = backoff_delay(
                attempt - 1,
                base=self._settings.backoff_base,
                cap=self._settings.backoff_max,
                rand=self._rand,
            )
            if outcome.retry_after is not None:
                delay = outcome.retry_after
            budget_left = self._settings.max_retry_seconds - elapsed
            stopping = self._stop is not None and self._stop.is_set()
            if stopping or attempt >= self._settings.max_attempts or delay > budget_left:
                message = (
                    f"{method} {urlsplit(url).path} gave up after {attempt} attempt(s) "
                    f"in {elapsed:.1f}s{' (stopping)' if stopping else ''}: {outcome.reason}"
                )
                if method != "GET" and maybe_applied:
                    raise OutcomeUnknownError(self.api, message)
                raise RetriableError(self.api, message)
            self.counter.record_retry(self.api)
            log.info(
                "http.retry",
                api=self.api,
                method=method,
                path=urlsplit(url).path,
                attempt=attempt,
                wait=round(delay, 3),
                reason=outcome.reason,
            )
            if self._stop is not None:
                self._stop.wait(delay)
            else:
                self._sleep(delay)

    def _attempt(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None,
        json_body: Any,
        scope: str,
        consume: Callable[[Iterator[bytes]], Any] | None,
    ) -> Any:
        self.pacer.acquire()
        headers: Mapping[str, str] | None = None
        try:
            request = self._client.build_request(
                method,
                url,
                params=params,
                json=json_body,
                headers={"Authorization": f"Bearer {self.credential.token}"},
            )
            try:
                response = self._client.send(request, stream=True)
            except httpx.TimeoutException as exc:
                self.counter.record(self.api, method, "timeout")
                # Only a connect or pool timeout proves the request never left.
                sent = not isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout)
                return _Attempt(
                    f"timeout ({type(exc).__name__}) talking to {self._host}", maybe_applied=sent
                )
            except httpx.TransportError as exc:
                self.counter.record(self.api, method, "network-error")
                sent = not isinstance(exc, httpx.ConnectError)
                return _Attempt(_network_reason(exc, self._host), maybe_applied=sent)
            try:
                headers = response.headers
                self.counter.record(self.api, method, response.status_code)
                if consume is not None and 200 <= response.status_code < 300:
                    return consume(self._chunks(response))
                body = b"".join(self._chunks(response))
            except httpx.TransportError as exc:
                return _Attempt(f"network error ({type(exc).__name__})", maybe_applied=True)
            finally:
                response.close()
            return self._interpret(method, url, response, body=body, scope=scope)
        finally:
            self.pacer.release(headers)

    def _chunks(self, response: httpx.Response) -> Iterator[bytes]:
        """The body as it arrives, refused past max_response_bytes: memory stays bounded."""
        limit = self._settings.max_response_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise ResponseFormatError(
                self.api,
                f"response of {int(declared)} bytes exceeds the limit of {limit} bytes "
                "(CERTSYNC_CLIENT__MAX_RESPONSE_BYTES)",
            )
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > limit:
                raise ResponseFormatError(
                    self.api,
                    f"response exceeds the limit of {limit} bytes "
                    "(CERTSYNC_CLIENT__MAX_RESPONSE_BYTES)",
                )
            yield chunk

    def _interpret(
        self, method: str, url: str, response: httpx.Response, *, body: bytes, scope: str
    ) -> Any:
        status = response.status_code
        path = urlsplit(url).path
        if status == 429:
            after = parse_retry_after(response.headers.get("retry-after"), now=self._wall_clock())
            return _Attempt("429 Too Many Requests", retry_after=after)
        if status >= 500:
            after = parse_retry_after(response.headers.get("retry-after"), now=self._wall_clock())
            return _Attempt(f"{status} server error", retry_after=after, maybe_applied=True)
        if status == 401:
            raise AuthError(
                self.api,
                f"401 Unauthorized on {method} {path}: the token is invalid or expired; "
                f"it came from {self.credential.describe()}: put a valid token there "
                "(token files are read again before every cycle)",
                status=401,
            )
        if status == 403:
            raise ForbiddenError(
                self.api,
                f"403 Forbidden on {method} {path}: the token from "
                f"{self.credential.describe()} lacks the scope '{scope}' "
                "(or is not allowed from this address)",
                scope=scope,
            )
        if status == 404:
            raise NotFoundError(self.api, f"404 Not Found: {method} {path}", status=404)
        if status >= 400:
            raise RejectedError(
                self.api,
                f"{status} on {method} {path}: {_server_message(body)}",
                status=status,
            )
        if status >= 300:
            raise ApiError(self.api, f"unexpected {status} redirect on {method} {path}")
        if not body.strip():
            return None
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            kind = response.headers.get("content-type", "unknown content type")
            raise ResponseFormatError(
                self.api,
                f"{method} {path} answered {status} with a body that is not JSON ({kind})",
                status=status,
            ) from None


def _host_port(url: str) -> str:
    """host:port of a URL, never its user-info (which could hold a password)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.hostname}:{port}"


def _network_reason(exc: httpx.TransportError, host: str) -> str:
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect to {host} ({_first_line(exc) or type(exc).__name__})"
    return f"network error talking to {host} ({type(exc).__name__})"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return REDACTOR(text.splitlines()[0][:160]) if text else ""


def _server_message(body: bytes) -> str:
    """The server's own words from an error body, kept short."""
    try:
        decoded = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        text = body.decode("utf-8", "replace").strip()
        return REDACTOR(text[:200]) or "no message"
    if isinstance(decoded, dict):
        parts = []
        if isinstance(decoded.get("message"), str):
            parts.append(decoded["message"])
        errors = decoded.get("errors")
        if isinstance(errors, dict):
            for field, msgs in list(errors.items())[:5]:
                text = (
                    "; ".join(m for m in msgs if isinstance(m, str))
                    if isinstance(msgs, list)
                    else str(msgs)
                )
                parts.append(f"{field}: {text}")
        if parts:
            return REDACTOR(" | ".join(parts)[:500])
    return REDACTOR(str(decoded)[:200])


def build_client(settings: ClientSettings, *, verify: bool = True) -> httpx.Client:
    """An httpx client with every timeout set; redirects off so a token never follows one."""
    timeout = httpx.Timeout(
        connect=settings.connect_timeout,
        read=settings.read_timeout,
        write=settings.write_timeout,
        pool=settings.pool_timeout,
    )
    limits = httpx.Limits(max_connections=settings.concurrency + 2)
    return httpx.Client(timeout=timeout, limits=limits, verify=verify, follow_redirects=False)
