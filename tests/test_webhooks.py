"""Monotree's webhooks: verification one case at a time, hostile input, and a new hire's
certificates arriving seconds after they register."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import generate_latest
from pydantic import SecretStr

from certsync.redaction import Redactor
from certsync.sandbox import SandboxState, World, generate
from certsync.service.inbox import Inbox
from certsync.service.metrics import Metrics
from certsync.service.signature import sign
from certsync.service.webhooks import Secrets, webhook_app
from certsync.settings import WebhookSettings
from certsync.store import Store
from tests.conftest import CERTSYNC, Cli, clean_env, free_port, metric_sum, wait_for

OLD, NEW = "whsec_old_3f9a", "whsec_new_77c1"
NOW = 1_800_000_000.0


def envelope(
    delivery: str = "d-1", user: int = 1042, event: str = "monotree.user.registered"
) -> bytes:
    doc = {
        "id": delivery,
        "event": event,
        "version": "v1",
        "timestamp": int(NOW),
        "payload": {"id": user, "email": "new.hire@example.com", "name": "New Hire"},
    }
    return json.dumps(doc).encode()


def signed(body: bytes, secret: str = NEW, stamp: float = NOW) -> dict[str, str]:
    return {"Timestamp": str(int(stamp)), "Signature": sign(secret, str(int(stamp)), body)}


class Receiver:
    """The receiver app on a store in memory, with what it handed to the runner."""

    def __init__(self) -> None:
        self.store = Store("sqlite://")
        self.handed: list[str] = []
        self.metrics = Metrics()
        secrets = Secrets(WebhookSettings(secrets=SecretStr(f"{OLD},{NEW}")), Redactor())
        self.inbox = Inbox(self.store.deliveries.record_many, self.handed.append)
        app = webhook_app(secrets, self.inbox, metrics=self.metrics, clock=lambda: NOW)
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1"
        )

    def post(self, body: bytes, headers: dict[str, str]) -> httpx.Response:
        sending = self.client.post("/webhooks/monotree", content=body, headers=headers)
        return self.loop.run_until_complete(sending)


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


def test_a_valid_delivery_is_recorded_and_handed_over(receiver: Receiver) -> None:
    body = envelope()
    answer = receiver.post(body, signed(body))
    assert (answer.status_code, answer.json()) == (202, {"status": "accepted"})
    assert receiver.handed == ["d-1"]
    (kept,) = receiver.store.deliveries.get(["d-1"])
    assert (kept.user_id, kept.email, kept.state) == (
        1042,
        "new.hire@example.com",
        "received",
    )


def test_the_second_of_two_secrets_is_accepted(receiver: Receiver) -> None:
    body = envelope()
    assert receiver.post(body, signed(body, OLD)).status_code == 202


@pytest.mark.parametrize(
    ("headers", "status", "outcome"),
    [
        (lambda b: signed(b + b" "), 401, "bad-signature"),  # tampered body
        (lambda b: signed(b, "whsec_wrong"), 401, "bad-signature"),
        (lambda b: signed(b, stamp=NOW - 301), 401, "stale"),
        (lambda b: signed(b, stamp=NOW + 301), 401, "stale"),  # from the future
        (lambda b: {"Timestamp": str(int(NOW))}, 401, "missing-headers"),
        (lambda b: {}, 401, "missing-headers"),
    ],
    ids=["tampered", "wrong-secret", "stale", "future", "no-signature", "no-headers"],
)
def test_a_delivery_that_cannot_prove_itself_is_refused_without_detail(
    receiver: Receiver, headers: Callable[[bytes], dict[str, str]], status: int, outcome: str
) -> None:
    body = envelope()
    answer = receiver.post(body, headers(body))
    assert answer.status_code == status and answer.content == b""  # no reason for a forger
    assert receiver.handed == [] and receiver.store.deliveries.get(["d-1"]) == []
    assert metric_sum(_metrics(receiver), "certsync_webhook_deliveries_total", outcome=outcome) == 1


def _metrics(receiver: Receiver) -> str:
    return generate_latest(receiver.metrics.registry).decode()


def test_an_oversized_body_is_413_before_its_signature_is_read(receiver: Receiver) -> None:
    body = b"{" + b" " * (64 * 1024) + b"}"
    assert receiver.post(body, signed(body)).status_code == 413


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[1, 2]", b'{"event": "monotree.user.registered"}', envelope(user=0)],
    ids=["not-json", "not-an-object", "no-id", "no-user"],
)
def test_malformed_json_is_400(receiver: Receiver, body: bytes) -> None:
    assert receiver.post(body, signed(body)).status_code == 400
    assert receiver.handed == []


def test_an_unknown_event_is_202_and_ignored(receiver: Receiver) -> None:
    body = envelope(event="monotree.post.created")
    answer = receiver.post(body, signed(body))
    assert (answer.status_code, answer.json()) == (202, {"status": "ignored"})
    assert receiver.handed == []


def test_a_redelivery_is_accepted_and_does_nothing(receiver: Receiver) -> None:
    body = envelope()
    assert receiver.post(body, signed(body)).status_code == 202
    again = receiver.post(body, signed(body))
    assert (again.status_code, again.json()) == (200, {"status": "duplicate"})
    assert receiver.handed == ["d-1"]


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.binary(max_size=400) | st.builds(envelope, st.text(max_size=8), st.integers()),
    extra=st.dictionaries(st.sampled_from(["Timestamp", "Signature"]), st.text(max_size=20)),
)
def test_ten_thousand_hostile_requests_never_get_a_5xx(body: bytes, extra: dict[str, str]) -> None:
    """1,000 generated bodies, each sent ten ways (validly signed, garbled, stale, unsigned,
    cut, padded, doubled...): 10,000 requests straight into the ASGI app. Never a 5xx,
    never an exception."""
    variants = [
        (body, signed(body)),
        (body, {**signed(body), **extra}),
        (body, extra),
        (body, signed(body, stamp=NOW - 10_000)),
        (body[: len(body) // 2], signed(body[: len(body) // 2])),
        (body + b"\x00", signed(body + b"\x00")),
        (body * 2, signed(body * 2)),
        (body, signed(body, OLD)),
        (body, {"Timestamp": "nan", "Signature": "0" * 64}),
        (body, {**signed(body), "Signature": "é" * 64}),
        (body[::-1], signed(body[::-1])),
    ]

    async def send_all() -> list[int]:
        statuses = []
        for content, headers in variants:
            # Header values as raw bytes, beyond ASCII too; only line breaks are left out.
            sent = {
                k.encode(): v.encode("utf-8")
                for k, v in headers.items()
                if "\n" not in v and "\r" not in v and "\x00" not in v
            }
            answer = await _HOSTILE_CLIENT.post("/webhooks/monotree", content=content, headers=sent)
            statuses.append(answer.status_code)
        return statuses

    with structlog.testing.capture_logs():  # thousands of refusals: kept, not printed
        statuses = _HOSTILE_LOOP.run_until_complete(send_all())
    assert set(statuses) <= {200, 202, 400, 401, 413}


# One receiver, one client and one event loop for all 10,000: a client is costly to make.
_HOSTILE = Receiver()
_HOSTILE_LOOP = _HOSTILE.loop
_HOSTILE_CLIENT = _HOSTILE.client


# --- end to end ------------------------------------------------------------------

SECRET = "whsec_e2e_1d5b0c"


@pytest.mark.e2e
def test_a_new_hire_gets_certificates_seconds_after_registering(
    cli: Cli,
    sandbox_state: SandboxState,
    daemons: Callable[..., tuple[Any, str]],
) -> None:
    world: World = generate(
        sandbox_state, users=12, types=2, seed=6, today=date.today(), email_every=3
    )
    hire = world.monotree_ids[3]  # mapped by email (every third user)
    sandbox_state.update_user(hire, registered=False)  # the invite is pending
    (cli.cwd / "mappings.toml").write_text(world.mapping_toml)
    port = free_port()
    proc, base = daemons(
        CERTSYNC_SCHEDULE__INTERVAL="3600",
        CERTSYNC_WEBHOOK__PORT=str(port),
        CERTSYNC_WEBHOOK__HOST="127.0.0.1",
        CERTSYNC_WEBHOOK__SECRETS=SECRET,
    )
    wait_for(lambda: httpx.get(f"{base}/healthz").json()["runs"] >= 1, what="the first cycle")
    assert not any(user == hire for _, user in sandbox_state.active_pairs())
    url = f"http://127.0.0.1:{port}/webhooks/monotree"
    monotree = sandbox_state_url(cli)
    assert (
        httpx.post(f"{monotree}/_sandbox/webhooks", json={"url": url, "secret": SECRET}).status_code
        == 201
    )
    sandbox_state.reset_counts()

    started = time.monotonic()
    assert httpx.post(f"{monotree}/_sandbox/users/{hire}/register").status_code == 200
    wait_for(
        lambda: any(user == hire for _, user in sandbox_state.active_pairs()),
        timeout=5,
        what="the new hire's certificates",
    )
    took = time.monotonic() - started
    assert sandbox_state.count("natecosmic") <= 1  # at most one pull (the kept one: none)
    writes = sandbox_state.count("monotree", "POST")
    assert writes >= 1
    assert sandbox_state.count("monotree", "GET") <= 1  # the hire's own certificates

    # A replay of the same delivery, and a forged one: accepted or refused, nothing sent.
    (attempt,) = [a for a in sandbox_state.outbox.attempts if a["status"] == 202]
    assert attempt["url"] == url
    body = json.dumps(
        {
            "id": "forged-1",
            "event": "monotree.user.registered",
            "version": "v1",
            "timestamp": int(time.time()),
            "payload": {"id": world.monotree_ids[6], "email": "x@example.com"},
        }
    ).encode()
    stamp = str(int(time.time()))
    forged = httpx.post(url, content=body, headers={"Timestamp": stamp, "Signature": "0" * 64})
    assert forged.status_code == 401
    replay = httpx.post(
        url, content=body, headers={"Timestamp": stamp, "Signature": sign(SECRET, stamp, body)}
    )
    assert replay.status_code == 202  # a genuine delivery for a user already synced
    again = httpx.post(
        url, content=body, headers={"Timestamp": stamp, "Signature": sign(SECRET, stamp, body)}
    )
    assert (again.status_code, again.json()["status"]) == (200, "duplicate")
    time.sleep(1)
    assert sandbox_state.count("monotree", "POST") == writes  # nothing more was written
    metrics = httpx.get(f"{base}/metrics").text
    assert metric_sum(metrics, "certsync_webhook_deliveries_total", outcome="accepted") == 2
    assert metric_sum(metrics, "certsync_webhook_deliveries_total", outcome="duplicate") == 1
    assert metric_sum(metrics, "certsync_webhook_to_applied_seconds_count") >= 1
    proc.terminate()
    _, stderr = proc.communicate(timeout=30)
    assert SECRET not in stderr
    print(f"\nwebhook: registered -> certificates assigned in {took:.2f} s")


def sandbox_state_url(cli: Cli) -> str:
    return cli.env["CERTSYNC_MONOTREE__BASE_URL"]


def test_the_daemon_refuses_a_webhook_port_without_a_secret(cli: Cli, world_free: None) -> None:
    done = cli("run", CERTSYNC_WEBHOOK__PORT="18999", CERTSYNC_HTTP__PORT="0", timeout=30)
    assert done.returncode == 2 and "CERTSYNC_WEBHOOK__SECRETS" in done.stderr


@pytest.fixture
def world_free(cli: Cli) -> None:
    (cli.cwd / "mappings.toml").write_text("")


@pytest.mark.e2e
def test_the_demo_ends_with_a_new_hire_synced_by_webhook(tmp_path: Path) -> None:
    """`make demo` runs this: three syncs, then a pending hire registers."""
    done = subprocess.run(
        [CERTSYNC, "demo"],
        check=False,
        env=clean_env(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "=== 4. a new hire accepts the Monotree invite ===" in done.stdout
    assert "demo: converged" in done.stdout


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except FileNotFoundError:
            continue  # a thread that ended between the listing and the read
    return found


def test_the_receiver_answers_from_a_process_of_its_own_and_its_death_stops_the_daemon(
    daemons: Callable[..., tuple[Any, str]], world_free: None
) -> None:
    """A cycle's interpreter lock must not hold up the answers: the receiver is a child
    process. Should it die, deliveries would be refused unseen, so the daemon stops,
    non-zero, for its supervisor to start both again."""
    port = free_port()
    proc, _ = daemons(
        CERTSYNC_SCHEDULE__INTERVAL="3600",
        CERTSYNC_WEBHOOK__PORT=str(port),
        CERTSYNC_WEBHOOK__SECRETS=SECRET,
    )
    body = envelope(event="monotree.post.created")
    url = f"http://127.0.0.1:{port}/webhooks/monotree"

    def answered() -> bool:
        try:
            return (
                httpx.post(url, content=body, headers=signed(body, SECRET, time.time())).status_code
                == 202
            )
        except httpx.ConnectError:
            return False

    wait_for(answered, what="the receiver answering")
    (child,) = _children(proc.pid)
    os.kill(child, signal.SIGKILL)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 1, stderr[-3000:]
    assert "webhook.receiver_died" in stderr and "Traceback" not in stderr
