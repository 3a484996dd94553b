"""Both API clients, built from settings, sharing one request counter and their credentials."""

from __future__ import annotations

import functools
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

import httpx
import structlog

from certsync.clients.counting import RequestCounter
from certsync.clients.credentials import Credential
from certsync.clients.http import ApiHttp
from certsync.clients.monotree import MonotreeClient
from certsync.clients.natecosmic import NatecosmicClient
from certsync.clients.pacing import Pacer
from certsync.clients.retry import Timing
from certsync.redaction import Redactor
from certsync.settings import ClientSettings, Settings, require_api

log = structlog.get_logger("certsync.clients.session")


@dataclass
class Clients:
    """Both API clients, the counter they share and the credentials they send."""

    natecosmic: NatecosmicClient
    monotree: MonotreeClient
    counter: RequestCounter
    credentials: tuple[Credential, ...] = ()
    sessions: tuple[ApiHttp, ...] = ()

    @contextmanager
    def writes_only_while(self, may_write: Callable[[], bool]) -> Iterator[None]:
        """Within the block, every attempt of a write request (retries included) first
        asks `may_write`; a no stops it unsent (StopRequested)."""
        for http in self.sessions:
            http.may_write = may_write
        try:
            yield
        finally:
            for http in self.sessions:
                http.may_write = lambda: True

    def reload_credentials(self) -> None:
        """Read every token source again: a rotated Secret is used from this cycle on."""
        for credential in self.credentials:
            if credential.reload():
                log.info("sync.token_rotated", source=credential.describe())


@contextmanager
def open_clients(
    settings: Settings,
    counter: RequestCounter | None = None,
    *,
    stop: threading.Event | None = None,
    redactor: Redactor | None = None,
) -> Iterator[Clients]:
    """Both clients, sharing one counter; `stop` makes waits and retries end early.
    Every token they read is registered with `redactor` (the logger's, normally)."""
    redactor = redactor or Redactor()
    counter = counter if counter is not None else RequestCounter()
    credentials: list[Credential] = []
    with ExitStack() as stack:

        def session(name: Literal["natecosmic", "monotree"]) -> ApiHttp:
            base_url, source = require_api(settings, name)
            api = settings.natecosmic if name == "natecosmic" else settings.monotree
            credential = Credential(source, redactor)
            credentials.append(credential)
            return ApiHttp(
                api=name,
                base_url=base_url,
                credential=credential,
                client=stack.enter_context(
                    build_client(settings.client, base_url, verify=api.verify_tls)
                ),
                settings=settings.client,
                counter=counter,
                pacer=Pacer(max_per_minute=api.max_requests_per_minute, stop=stop),
                timing=Timing(stop=stop),
            )

        natecosmic, monotree = session("natecosmic"), session("monotree")
        yield Clients(
            NatecosmicClient(natecosmic),
            MonotreeClient(monotree),
            counter,
            tuple(credentials),
            (natecosmic, monotree),
        )


@functools.cache
def _trusted_roots() -> ssl.SSLContext:
    """The CA bundle httpx would load (SSL_CERT_FILE and SSL_CERT_DIR honoured), once per
    process: loading it costs about 50 ms of CPU, and a daemon opens clients every cycle."""
    return httpx.create_ssl_context()


def tls_context(base_url: str, *, verify: bool = True) -> ssl.SSLContext:
    """The TLS context for an API at `base_url`."""
    if not verify:
        return httpx.create_ssl_context(verify=False)
    if urlsplit(base_url).scheme != "https":
        # Links are followed only within the base URL's origin (`check_same_origin`), so
        # an API on plain HTTP never starts TLS: a context that trusts no root, unloaded.
        return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    return _trusted_roots()


def build_client(settings: ClientSettings, base_url: str, *, verify: bool = True) -> httpx.Client:
    """An httpx client with every timeout set; redirects off so a token never follows one."""
    timeout = httpx.Timeout(
        connect=settings.connect_timeout,
        read=settings.read_timeout,
        write=settings.write_timeout,
        pool=settings.pool_timeout,
    )
    limits = httpx.Limits(max_connections=settings.concurrency + 2)
    return httpx.Client(
        timeout=timeout,
        limits=limits,
        verify=tls_context(base_url, verify=verify),
        follow_redirects=False,
    )
