"""`certsync run` wired for real: the store, both clients, the health listener and the
admin API, signals, and the daemon's loop in a thread of its own."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack

import structlog

from certsync.clients.session import Clients
from certsync.engine.approval import approve_held, reject_held
from certsync.engine.cycle import SyncOptions, SyncReport, open_clients, run_sync
from certsync.engine.registration import sync_registered
from certsync.errors import ConfigError
from certsync.people import Person, find_person
from certsync.redaction import Redactor
from certsync.service.admin import AdminToken, Lookups, admin_routes
from certsync.service.daemon import Daemon
from certsync.service.health import health_app
from certsync.service.leadership import Leadership
from certsync.service.receiver import ReceiverProcess
from certsync.service.schedule import SystemClock
from certsync.service.serve import ServerThread
from certsync.service.webhooks import Secrets
from certsync.settings import Settings, api_problems, settings_message
from certsync.store import Store, open_store

log = structlog.get_logger("certsync.service.daemon")


class _StoreProbe:
    """The real store, as the daemon sees it."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def ping(self) -> None:
        self._store.ping()

    def owned_count(self) -> int:
        return self._store.holdings.owned_count()

    def held_back_by_reason(self) -> Mapping[str, int]:
        return self._store.held.pending_by_reason()


def run_daemon(settings: Settings, redactor: Redactor) -> bool:
    """The real thing: the store, both clients, the health listener, signals, the loop.

    True when the daemon stopped cleanly: its last cycle ended within the stop timeout.
    """
    # Only what no cycle can change ends the daemon: the environment. A token file
    # or mapping file that is missing now may be mounted in a moment.
    problems = api_problems(settings, tokens=False)
    if problems:
        raise ConfigError(settings_message(problems))
    stop = threading.Event()
    with ExitStack() as stack:
        store = open_store(settings)
        stack.callback(store.close)
        clients = stack.enter_context(open_clients(settings, stop=stop, redactor=redactor))

        leadership = Leadership(store.leader, poll=settings.lease.standby_poll, clock=SystemClock())

        def stopping() -> bool:
            # A stop, or leadership lost (or not renewed in time): no further write.
            return stop.is_set() or not leadership.may_write()

        def cycle(options: SyncOptions) -> SyncReport:
            return run_sync(settings, store, clients, options, should_stop=stopping)

        def decide_held(plan_id: str, verdict: str, by: str) -> SyncReport | None:
            if verdict == "approve":
                return approve_held(settings, store, clients, plan_id, by=by, should_stop=stopping)
            reject_held(settings, store, plan_id, by=by)
            return None

        def handle_webhook(delivery_ids: Sequence[str]) -> SyncReport | None:
            return _handle_webhook(settings, store, clients, daemon, delivery_ids, stop=stopping)

        daemon = Daemon(
            settings,
            cycle=cycle,
            store=_StoreProbe(store),
            stop=stop,
            redactor=redactor,
            decide_held=decide_held,
            handle_webhook=handle_webhook,
            leadership=leadership,
        )

        def pick_up_deliveries() -> None:
            # Any replica may have received a delivery; the leader handles them all.
            for waiting in store.deliveries.waiting():
                daemon.webhook_received(waiting)

        leadership.while_leading = pick_up_deliveries
        clients.counter.observers.append(daemon.metrics.observe_request)
        clients.counter.retry_observers.append(daemon.metrics.observe_retry)
        clients.counter.budget_observers.append(daemon.metrics.observe_budget)
        signal.signal(signal.SIGTERM, daemon.request_stop)
        signal.signal(signal.SIGINT, daemon.request_stop)
        # The receiver first: /healthz answers once every part of the daemon is up.
        receiver = _receive(settings, daemon, redactor, stack)
        server = _serve(settings, daemon, store, redactor)
        if server is not None:
            stack.callback(server.stop)
        # Deliveries recorded before a stop or a crash, or by another replica, are
        # picked up while this one leads.
        leader = threading.Thread(
            target=leadership.run, args=(stop,), name="certsync-leadership", daemon=True
        )
        leader.start()
        runner = threading.Thread(target=daemon.loop, name="certsync-cycles", daemon=True)
        runner.start()
        log.info(
            "daemon.started",
            interval=settings.schedule.interval,
            cron=settings.schedule.cron,
            full_every=settings.schedule.full_every,
            health_port=server.port() if server else None,
            webhook_port=receiver.port() if receiver else None,
        )
        while not stop.wait(1.0):
            if not runner.is_alive():  # cannot happen by design; if it does, say so and exit
                log.error("daemon.cycle_thread_died")
                stop.set()
                return False
        bound = settings.schedule.stop_timeout
        runner.join(bound)
        finished = not runner.is_alive()
        if not finished:
            log.error("daemon.stop_timeout", bound=bound)
        leader.join(5)
        # After the last cycle (which released the writer lock), the leader lease: a
        # standby takes over at its next look.
        leadership.resign()
    clean = finished and not (receiver is not None and receiver.died)
    log.info("daemon.stopped", clean=clean)
    return clean


def _serve(
    settings: Settings, daemon: Daemon, store: Store, redactor: Redactor
) -> ServerThread | None:
    listener = settings.http
    if not listener.port:
        return None
    token = AdminToken(listener, redactor)
    admin = None
    if token.configured:

        def find(asked: Sequence[str]) -> list[Person]:
            by_email = store.users.by_email()
            users = store.mappings.users()
            return [find_person(a, users, by_email) for a in asked]

        lookups = Lookups(find, store.held.pending, store.held.get)
        admin = admin_routes(daemon, token, lookups)
    server = ServerThread([(health_app(daemon, admin), listener.port)], host=listener.host)
    try:
        server.start()
    except RuntimeError as exc:
        raise ConfigError(f"health listener on {listener.host}:{listener.port}: {exc}") from None
    return server


def _receive(
    settings: Settings, daemon: Daemon, redactor: Redactor, stack: ExitStack
) -> ReceiverProcess | None:
    listener = settings.webhook
    if not listener.port:
        return None
    if not Secrets(listener, redactor).configured:
        raise ConfigError(
            "CERTSYNC_WEBHOOK__PORT is set but no secret is: set CERTSYNC_WEBHOOK__SECRETS "
            "or CERTSYNC_WEBHOOK__SECRETS_FILE (the secret Monotree signs deliveries with)"
        )
    # A process of its own: a cycle holding this interpreter's lock must not hold up
    # the answers (service/receiver.py).
    deliveries = daemon.metrics.deliveries
    receiver = ReceiverProcess(
        on_delivery=daemon.webhook_received,
        on_outcome=lambda outcome: deliveries.labels(outcome).inc(),
        on_death=daemon.request_stop,
    )
    stack.callback(receiver.stop)
    return receiver


def _handle_webhook(
    settings: Settings,
    store: Store,
    clients: Clients,
    daemon: Daemon,
    delivery_ids: Sequence[str],
    *,
    stop: Callable[[], bool],
) -> SyncReport | None:
    report, waits = sync_registered(settings, store, clients, delivery_ids, should_stop=stop)
    for waited in waits:
        daemon.metrics.webhook_latency.observe(waited)
    return report
