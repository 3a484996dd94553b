"""The demo's last act: a new hire accepts their Monotree invite, Monotree's webhook
arrives, and their certificates follow within a second, with no cycle waited for."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import TextIO

from pydantic import SecretStr

from certsync.engine.cycle import SyncOptions, SyncReport, open_clients, run_sync
from certsync.engine.registration import sync_registered
from certsync.redaction import Redactor
from certsync.sandbox import MonotreeUser, Sandbox, make_record
from certsync.service.daemon import Daemon
from certsync.service.inbox import Inbox
from certsync.service.serve import ServerThread
from certsync.service.webhooks import Secrets, webhook_app
from certsync.settings import Settings, WebhookSettings
from certsync.store import open_store

SECRET = "whsec_demo_secret"  # noqa: S105 - the demo's own sandbox, shared with nobody
HIRE = 9002


def add_pending_hire(sandbox: Sandbox, type_id: str, slug: str, folder: Path) -> None:
    """An invite sent, not yet accepted; Natecosmic already certifies them."""
    state = sandbox.state
    hire_nc = "7d1c9a4e-hire-4b50-8888-000000000002"
    with state.lock:
        state.add_user(MonotreeUser(HIRE, "Pending Hire", "pending.hire@example.com", False))
        state.records.append(
            make_record(
                state.rng,
                user_id=hire_nc,
                type_id=type_id,
                slug=slug,
                issued_on=date.today(),
                validity_months=12,
            )
        )
    with (folder / "mappings.toml").open("a", encoding="utf-8") as f:
        f.write(
            f'\n[[users]]\nnatecosmic = "{hire_nc}"\nmonotree_email = "pending.hire@example.com"\n'
        )


def register_and_wait(
    settings: Settings, sandbox: Sandbox, out: TextIO, redactor: Redactor
) -> float | None:
    """Serve the receiver and run the cycle runner; register the hire; seconds until they
    hold a certificate (None if not within 10 s)."""
    state = sandbox.state
    store = open_store(settings)
    stop = threading.Event()
    try:
        with open_clients(settings, stop=stop, redactor=redactor) as clients:

            def cycle(options: SyncOptions) -> SyncReport:
                return run_sync(settings, store, clients, options, should_stop=stop.is_set)

            def handle(deliveries: Sequence[str]) -> SyncReport | None:
                done, _ = sync_registered(
                    settings, store, clients, deliveries, should_stop=stop.is_set
                )
                return done

            daemon = Daemon(
                settings, cycle=cycle, store=_NoProbe(), stop=stop, handle_webhook=handle
            )
            # No scheduled cycle during the act (a day away): only the webhook's sync runs.
            daemon.schedule.next_at = daemon.clock.now() + 86400
            secrets = Secrets(WebhookSettings(secrets=SecretStr(SECRET)), redactor)
            inbox = Inbox(store.deliveries.record_many, daemon.webhook_received)
            app = webhook_app(secrets, inbox)
            server = ServerThread([(app, 0)])
            server.start()
            runner = threading.Thread(target=daemon.loop, daemon=True)
            runner.start()
            try:
                url = f"http://127.0.0.1:{server.port()}/webhooks/monotree"
                state.outbox.targets.append((url, SECRET))
                before = state.count()
                started = time.monotonic()
                with state.lock:
                    user = state.users[HIRE]
                    state.update_user(HIRE, registered=True)
                state.outbox.deliver(state.outbox.envelope(user))
                deadline = started + 10
                while time.monotonic() < deadline:
                    if any(u == HIRE for _, u in state.active_pairs()):
                        took = time.monotonic() - started
                        out.write(
                            f"\n=== 4. a new hire accepts the Monotree invite ===\n"
                            f"pending.hire@example.com registered; Monotree's webhook arrived "
                            f"and their certificate was assigned {took:.2f} s later "
                            f"({state.count() - before} request(s) to the APIs, no cycle "
                            "waited for)\n"
                        )
                        return took
                    time.sleep(0.05)
                return None
            finally:
                daemon.request_stop()
                runner.join(10)
                server.stop()
                inbox.close()
    finally:
        store.close()


class _NoProbe:
    def ping(self) -> None:
        return None

    def owned_count(self) -> int:
        return 0

    def held_back_by_reason(self) -> Mapping[str, int]:
        return {}
