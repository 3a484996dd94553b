"""One API's HTTP session: base URL, bearer token, pacing, retries, error mapping, counting.

This is the only module that touches httpx exceptions and status codes. Above
it, callers get decoded JSON (or what their stream reader made of the body) or
an error from `certsync.errors`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

import httpx
import structlog

from certsync.clients.conditional import Validators
from certsync.clients.counting import RequestCounter
from certsync.clients.credentials import Credential
from certsync.clients.pacing import Pacer
from certsync.clients.retry import Retry, Timing, parse_retry_after, with_retries
from certsync.errors import (
    ApiError,
    AuthError,
    EndpointNotFoundError,
    ForbiddenError,
    NotFoundError,
    RejectedError,
    ResponseFormatError,
    StopRequested,
)
from certsync.settings import ClientSettings

log = structlog.get_logger("certsync.clients.http")

T = TypeVar("T")
Redact = Callable[[str], str]
JsonBody = Mapping[str, object] | None


@dataclass(frozen=True, slots=True)
class _Call:
    """One request as the caller asked for it, the same on every attempt."""

    method: str
    url: str
    scope: str
    params: Mapping[str, str | int] | None = None
    json_body: JsonBody = None
    idempotent: bool = True
    # Sent as If-None-Match / If-Modified-Since: a 304 answer is then a result, not an error.
    validators: Validators | None = None

    @property
    def what(self) -> str:
        return f"{self.method} {urlsplit(self.url).path}"


class ApiHttp:
    """One API's session. Reads and writes go through `request` (JSON) or `stream`."""

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
        timing: Timing | None = None,
    ) -> None:
        self.api = api
        self.base_url = base_url.rstrip("/")
        self._origin = urlsplit(self.base_url)[:2]
        self._host = _host_port(self.base_url)
        self._safe_base = f"{urlsplit(self.base_url).scheme}://{self._host}"
        self.credential = credential
        self._client = client
        self._settings = settings
        self.timing = timing or Timing()
        self.counter = counter if counter is not None else RequestCounter()
        self.pacer = pacer if pacer is not None else Pacer(sleep=self.timing.sleep)
        # Asked right before every attempt of a write (a first try or a retry): a
        # cycle whose writer lease is no longer sure sends nothing more.
        self.may_write: Callable[[], bool] = lambda: True

    def __repr__(self) -> str:
        return f"ApiHttp(api={self.api!r}, base_url={self._safe_base!r})"

    def _now(self) -> float:
        return self.timing.wall_clock()

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
        scope: str,
        params: Mapping[str, str | int] | None = None,
        json_body: JsonBody = None,
        endpoint: bool = False,
        idempotent: bool = True,
    ) -> object:
        """Send with retries; the decoded JSON body (None for an empty body).

        Writes are retried like reads: Monotree's assign skips active holders and
        reset with `expire` is idempotent, so a repeat cannot double-apply. A write
        that is not (creating a template) passes `idempotent=False`: it is retried
        only where the server cannot have acted on it (429, no connection), and an
        attempt that may have landed ends it as OutcomeUnknownError.

        `endpoint` marks a list that always exists: a 404 there means the base
        URL is wrong, and is reported as such rather than as missing data.
        """

        def read(response: httpx.Response) -> object:
            return self._decode(method, url, response, b"".join(self._chunks(response)))

        call = _Call(method, url, scope, params, json_body, idempotent)
        return self._call(call, endpoint, read)

    def stream(
        self,
        url: str,
        *,
        scope: str,
        consume: Callable[[Iterator[bytes]], T],
        validators: Validators | None = None,
        endpoint: bool = False,
    ) -> tuple[T | None, Validators]:
        """A GET like `request`, but a successful body is handed to `consume` as it
        arrives, chunk by chunk: a large list is parsed without ever being held whole. A
        connection lost mid-body is retried. With `validators`, a conditional GET: (None,
        validators) when the server answers 304 Not Modified. Else (what `consume` made
        of the body, the answer's validators); a 304 nobody asked for is an error."""

        def read(response: httpx.Response) -> tuple[T | None, Validators]:
            if response.status_code == 304:
                assert validators is not None  # `_attempt` refuses a 304 unasked
                return None, validators
            return consume(self._chunks(response)), Validators.of(response.headers)

        call = _Call("GET", url, scope, validators=validators or None)
        return self._call(call, endpoint, read)

    def _call(self, call: _Call, endpoint: bool, read: Callable[[httpx.Response], T]) -> T:
        what = call.what
        reloaded = False

        def once() -> T:
            nonlocal reloaded
            sent = self.credential.token
            try:
                return self._attempt(call, read)
            except NotFoundError:
                if not endpoint:
                    raise
                raise EndpointNotFoundError(
                    self.api,
                    f"{what} answered 404: check CERTSYNC_{self.api.upper()}__BASE_URL "
                    f"(now {self._safe_base}{urlsplit(self.base_url).path}); it is the API's "
                    "origin, certsync adds the path itself",
                    status=404,
                ) from None
            except AuthError as exc:
                # A Secret rotated in place: read the token again, once, before failing.
                # Another request may have read the new one meanwhile: that counts too.
                if reloaded or exc.status != 401:
                    raise
                if not self.credential.reload() and self.credential.token == sent:
                    raise
                reloaded = True
                log.info("http.token_reloaded", api=self.api, source=self.credential.describe())
                return once()

        return with_retries(
            once,
            api=self.api,
            what=what,
            write=call.method != "GET",
            idempotent=call.idempotent,
            settings=self._settings,
            timing=self.timing,
            counter=self.counter,
        )

    def _attempt(self, call: _Call, read: Callable[[httpx.Response], T]) -> T:
        method, url = call.method, call.url
        self.pacer.acquire()
        if method != "GET" and not self.may_write():
            self.pacer.release(None)
            raise StopRequested("the writer lease is no longer sure: no write request is sent")
        headers: Mapping[str, str] | None = None
        try:
            request = self._client.build_request(
                method,
                url,
                params=call.params,
                json=call.json_body,
                headers={
                    "Authorization": f"Bearer {self.credential.token}",
                    **(call.validators.headers() if call.validators else {}),
                },
            )
            try:
                response = self._client.send(request, stream=True)
            except httpx.TimeoutException as exc:
                self.counter.record(self.api, method, "timeout")
                # Only a connect or pool timeout proves the request never left.
                sent = not isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout)
                raise Retry(
                    f"timeout ({type(exc).__name__}) talking to {self._host}", maybe_applied=sent
                ) from None
            except httpx.TransportError as exc:
                self.counter.record(self.api, method, "network-error")
                sent = not isinstance(exc, httpx.ConnectError)
                raise Retry(
                    _network_reason(exc, self._host, self.credential.redact), maybe_applied=sent
                ) from None
            try:
                headers = response.headers
                self.counter.record(self.api, method, response.status_code)
                remaining = headers.get("x-ratelimit-remaining")
                if remaining is not None and remaining.isdecimal():
                    self.counter.record_budget(self.api, float(remaining))
                if 200 <= response.status_code < 300 or (
                    response.status_code == 304 and call.validators
                ):
                    return read(response)
                body = b"".join(self._chunks(response))
            except httpx.TransportError as exc:
                raise Retry(f"network error ({type(exc).__name__})", maybe_applied=True) from None
            finally:
                response.close()
            self._refuse(method, url, response, body=body, scope=call.scope)
            raise ApiError(self.api, f"{method} {urlsplit(url).path}: unexpected answer")
        finally:
            self.pacer.release(headers)

    def _chunks(self, response: httpx.Response) -> Iterator[bytes]:
        """The body as it arrives, refused past max_response_bytes: memory stays bounded."""
        limit = self._settings.max_response_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdecimal() and int(declared) > limit:
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

    def _refuse(
        self, method: str, url: str, response: httpx.Response, *, body: bytes, scope: str
    ) -> None:
        """Raise for an answer that is not a success: Retry for what may pass next time."""
        status = response.status_code
        path = urlsplit(url).path
        if status == 429:
            after = parse_retry_after(response.headers.get("retry-after"), now=self._now())
            raise Retry("429 Too Many Requests", retry_after=after)
        if status >= 500:
            after = parse_retry_after(response.headers.get("retry-after"), now=self._now())
            raise Retry(f"{status} server error", retry_after=after, maybe_applied=True)
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
                f"{status} on {method} {path}: {_server_message(body, self.credential.redact)}",
                status=status,
            )
        if status >= 300:
            raise ApiError(self.api, f"unexpected {status} redirect on {method} {path}")

    def _decode(self, method: str, url: str, response: httpx.Response, body: bytes) -> object:
        if not body.strip():
            return None
        try:
            decoded: object = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            kind = response.headers.get("content-type", "unknown content type")
            raise ResponseFormatError(
                self.api,
                f"{method} {urlsplit(url).path} answered {response.status_code} with a body "
                f"that is not JSON ({kind})",
                status=response.status_code,
            ) from None
        return decoded


def _host_port(url: str) -> str:
    """host:port of a URL, never its user-info (which could hold a password)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.hostname}:{port}"


def _network_reason(exc: httpx.TransportError, host: str, redact: Redact) -> str:
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect to {host} ({_first_line(exc, redact) or type(exc).__name__})"
    return f"network error talking to {host} ({type(exc).__name__})"


def _first_line(exc: BaseException, redact: Redact) -> str:
    text = str(exc).strip()
    return redact(text.splitlines()[0][:160]) if text else ""


def _server_message(body: bytes, redact: Redact) -> str:
    """The server's own words from an error body, kept short."""
    try:
        decoded = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        text = body.decode("utf-8", "replace").strip()
        return redact(text[:200]) or "no message"
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
            return redact(" | ".join(parts)[:500])
    return redact(str(decoded)[:200])
