"""Which replica leads, driven step by step: a fake lease and a fake clock, no sleeping.
(The real lease is in test_lease.py; real replicas failing over in test_failover.py.)"""

from __future__ import annotations

from dataclasses import dataclass, field

from certsync.errors import StoreError
from certsync.service.daemon import Daemon
from certsync.service.leadership import Leadership
from certsync.settings import load_settings
from tests.test_daemon_driven import FakeClock, FakeStore, ScriptedCycle


@dataclass
class FakeLease:
    """A leader lease another replica may hold (`holder`) or a database may refuse."""

    seconds: float = 30.0
    holder: str | None = "certsync pid 7 on replica-a"
    reachable: bool = True
    renewable: bool = True
    fresh: bool = True
    epoch: int | None = None
    released: int = 0
    calls: list[str] = field(default_factory=list)

    @property
    def beat_seconds(self) -> float:
        return self.seconds / 3

    def _reach(self, what: str) -> None:
        self.calls.append(what)
        if not self.reachable:
            raise StoreError("the store lease could not be read: connection refused")

    def try_acquire(self) -> str | None:
        self._reach("acquire")
        if self.holder is None:
            self.epoch = (self.epoch or 0) + 1
        return self.holder

    def heartbeat(self) -> bool:
        self._reach("renew")
        return self.renewable

    def valid(self) -> bool:
        return self.fresh

    def release(self) -> None:
        self.released += 1


def leader_metric(daemon: Daemon) -> float | None:
    """certsync_leader as a scrape would read it."""
    return daemon.metrics.registry.get_sample_value("certsync_leader")


def replica(lease: FakeLease) -> tuple[Daemon, Leadership, FakeClock, ScriptedCycle]:
    clock, cycle = FakeClock(), ScriptedCycle([])
    leadership = Leadership(lease, poll=1.0, clock=clock)
    settings = load_settings(schedule={"interval": 900})
    daemon = Daemon(settings, cycle=cycle, store=FakeStore(), clock=clock, leadership=leadership)
    return daemon, leadership, clock, cycle


def test_a_standby_runs_no_cycle_and_is_ready_while_it_sees_the_leader() -> None:
    lease = FakeLease()
    daemon, leadership, clock, cycle = replica(lease)
    leadership.step()
    assert daemon.run_pending() is None and cycle.seen == []
    ready, reason = daemon.readiness()
    assert ready and reason == "standing by; the leader is certsync pid 7 on replica-a"
    assert leader_metric(daemon) == 0
    clock.t += 31  # no fresh view of the lease for longer than the lease itself
    ready, reason = daemon.readiness()
    assert not ready and "last read 31s ago" in reason


def test_a_standby_takes_over_a_free_lease_and_starts_with_a_full_cycle() -> None:
    lease = FakeLease()
    daemon, leadership, clock, cycle = replica(lease)
    leadership.step()
    daemon.run_pending()
    clock.t += 5
    lease.holder = None  # the leader released it (SIGTERM) or it ran out
    leadership.step()
    assert leadership.leading and leader_metric(daemon) == 1
    assert daemon.metrics.registry.get_sample_value("certsync_lease_epoch") == 1
    report = daemon.run_pending()
    assert report is not None and cycle.seen[0].force_full


def test_the_leader_renews_every_third_of_the_lease_and_steps_down_when_taken() -> None:
    lease = FakeLease(holder=None)
    daemon, leadership, clock, _ = replica(lease)
    leadership.step()
    for _ in range(25):  # 25 polls of a second: renewals at 10 s and 20 s only
        clock.t += 1
        leadership.step()
    assert lease.calls.count("renew") == 2
    lease.renewable = False  # another replica holds it now
    clock.t += 10
    leadership.step()
    assert not leadership.leading and leader_metric(daemon) == 0
    assert daemon.run_pending() is None


def test_a_leader_out_of_reach_of_its_database_leads_only_while_its_lease_is_sure() -> None:
    lease = FakeLease(holder=None)
    daemon, leadership, clock, _ = replica(lease)
    leadership.step()
    lease.reachable = False
    clock.t += 10
    leadership.step()
    assert leadership.leading and leadership.may_write()  # one renewal missed: still sure
    lease.fresh = False  # past the point where another replica could take over
    assert leader_metric(daemon) == 0  # a scrape sees it at once, even before the next step
    clock.t += 10
    leadership.step()
    assert not leadership.leading and not leadership.may_write()


def test_webhooks_wait_for_the_leader_and_each_is_queued_once() -> None:
    lease = FakeLease()
    daemon, leadership, _, _ = replica(lease)
    leadership.step()
    daemon.webhook_received("d-0")  # a standby: it leaves it to the leader
    lease.holder = None
    leadership.step()
    daemon.run_pending()  # the full cycle a new leader starts with
    assert daemon.schedule.take() is None  # nothing the standby was told is queued
    daemon.webhook_received("d-1")
    daemon.webhook_received("d-1")  # the leader's poll of the store found it again
    first = daemon.schedule.take()
    assert first is not None and first.webhook == "d-1"
    assert daemon.schedule.take() is None


def test_a_graceful_stop_releases_the_lease_once() -> None:
    lease = FakeLease(holder=None)
    _, leadership, _, _ = replica(lease)
    leadership.step()
    leadership.resign()
    leadership.resign()
    assert lease.released == 1 and not leadership.leading


def test_a_replica_that_steps_down_stops_reporting_the_leaders_figures() -> None:
    """Held-back revocations, rate-limit headroom and failures are the leader's to report:
    a former leader that kept them would keep alerts firing after the new one cleared them."""
    lease = FakeLease(holder=None)
    daemon, leadership, clock, _ = replica(lease)
    leadership.step()
    daemon.metrics.observe_held_back({"mass-revoke": 40})
    daemon.metrics.observe_budget("monotree", 0)
    lease.renewable = False
    clock.t += 10
    leadership.step()
    sample = daemon.metrics.registry.get_sample_value
    assert sample("certsync_held_back_revocations", {"reason": "mass-revoke"}) == 0
    assert sample("certsync_rate_limit_remaining", {"api": "monotree"}) is None
