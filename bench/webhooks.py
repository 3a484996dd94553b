"""The webhook receiver under load, while cycles run: `make bench-webhooks`.

A real `certsync run` against the sandbox (10,000 records, a cycle every
second) receives signed `monotree.user.registered` deliveries at 200 a second
for 10 seconds, then a burst of 50 redeliveries of one id sent at once. Printed:
answers by status, the receiver's p50/p99 answer time at 200 a second (target
p99 under 50 ms) with the sender's own lag, the burst's times apart (fifty at
once queue behind each other by design), and whether every delivery was
recorded once and handled. The sender is `http_load.py`: one event loop.

`BENCH_STORE=postgresql` runs the daemon on a PostgreSQL 16 started for the run
(the test suite's pgserver wheel) instead of SQLite, whose single write lock
the cycles' transactions hold while deliveries wait to commit.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

from certsync.service.signature import sign
from http_load import Request, post, send_all

SECRET = "whsec_bench_secret"  # noqa: S105 - the benchmark's own sandbox
RATE, SECONDS, BURST = 200, 10, 50


def percentile(ordered: list[float], q: float) -> float:
    return ordered[max(0, int(len(ordered) * q) - 1)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def delivery(user: int, delivery_id: str | None = None) -> bytes:
    return json.dumps(
        {
            "id": delivery_id or str(uuid.uuid4()),
            "event": "monotree.user.registered",
            "version": "v1",
            "timestamp": int(time.time()),
            "payload": {"id": user, "email": f"load{user}@example.com"},
        }
    ).encode()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        # The sandbox in a process of its own: its CPU (each cycle's 10,000-record pull)
        # must not hold the load generator's interpreter lock and skew its clock.
        n_port, m_port = free_port(), free_port()
        base = {k: v for k, v in os.environ.items() if not k.startswith("CERTSYNC_")}
        sandbox = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "certsync",
                "sandbox",
                "--users",
                "3400",
                "--types",
                "20",
                "--seed",
                "7",
                "--rate-limit",
                "0",
                "--natecosmic-port",
                str(n_port),
                "--monotree-port",
                str(m_port),
                "--mappings-out",
                str(folder / "m.toml"),
            ],
            env=base,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert sandbox.stdout is not None
        exports = {}
        for line in sandbox.stdout:
            if line.strip().startswith("export "):
                key, _, value = line.strip()[len("export ") :].partition("=")
                exports[key] = value
            if line.startswith("Press Ctrl-C"):
                break
        mapped_user = 1000  # the generated world's first Monotree user, mapped
        hook, health = free_port(), free_port()
        store_url, server = f"sqlite:///{folder / 'c.db'}", None
        if os.environ.get("BENCH_STORE") == "postgresql":
            os.environ["LC_ALL"] = "C.UTF-8"  # initdb needs a locale that exists
            from pgserver.postgres_server import get_server

            server = get_server(folder / "pg", cleanup_mode="stop")
            socket_dir = server.get_postmaster_info().socket_dir
            store_url = f"postgresql+psycopg://postgres@/postgres?host={socket_dir}"
        env = {
            **base,
            **exports,
            "CERTSYNC_MAPPINGS_FILE": str(folder / "m.toml"),
            "CERTSYNC_DATABASE_URL": store_url,
            "CERTSYNC_SCHEDULE__INTERVAL": os.environ.get("BENCH_INTERVAL", "1"),
            "CERTSYNC_HTTP__HOST": "127.0.0.1",
            "CERTSYNC_HTTP__PORT": str(health),
            "CERTSYNC_WEBHOOK__HOST": "127.0.0.1",
            "CERTSYNC_WEBHOOK__PORT": str(hook),
            "CERTSYNC_WEBHOOK__SECRETS": SECRET,
            "CERTSYNC_LOG_LEVEL": "warning",
        }
        daemon = subprocess.Popen(
            [sys.executable, "-m", "certsync", "run"], env=env, stderr=subprocess.DEVNULL
        )
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"http://127.0.0.1:{health}/healthz").json()["runs"] >= 1:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
            # Users no mapping names (ids past the world): recorded and handled, no sync each.
            bodies = [delivery(u) for u in range(500_000, 500_000 + RATE * SECONDS)]
            burst = delivery(mapped_user, "burst-1")

            def signed(body: bytes) -> Request:
                def make() -> bytes:
                    stamp = str(int(time.time()))
                    headers = {"Timestamp": stamp, "Signature": sign(SECRET, stamp, body)}
                    return post("127.0.0.1", hook, "/webhooks/monotree", body, headers)

                return make

            timed = [(tick / RATE, signed(body)) for tick, body in enumerate(bodies)]
            timed += [(SECONDS, signed(burst))] * BURST
            runs_before = httpx.get(f"http://127.0.0.1:{health}/healthz").json()["runs"]
            results = send_all("127.0.0.1", hook, timed)
            statuses = Counter(results.statuses)
            runs_during = (
                httpx.get(f"http://127.0.0.1:{health}/healthz").json()["runs"] - runs_before
            )
            time.sleep(2)
            handled_by = time.monotonic() + 60
            rows: dict[str, int] = {}
            engine = create_engine(store_url)
            while time.monotonic() < handled_by:
                with engine.connect() as con:
                    rows = {
                        str(state): int(n)
                        for state, n in con.execute(
                            text("SELECT state, COUNT(*) FROM webhook_delivery GROUP BY state")
                        )
                    }
                if not rows.get("received"):
                    break
                time.sleep(0.5)
            engine.dispose()
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=60)
            sandbox.send_signal(signal.SIGTERM)
            sandbox.wait(timeout=30)
            if server is not None:
                server.cleanup()
    timed_answers = list(zip(results.latencies, results.scheduled, strict=True))
    steady = sorted(t for t, at in timed_answers if at < SECONDS)
    at_once = sorted(t for t, at in timed_answers if at >= SECONDS)
    total = sum(rows.values())
    print(
        f"webhooks: {RATE}/s for {SECONDS} s, then {BURST} redeliveries of one id at once; "
        f"{runs_during} cycle(s) of 10,200 records ran meanwhile; store "
        f"{os.environ.get('BENCH_STORE', 'sqlite')}"
    )
    print(f"  answers by status: {dict(sorted(statuses.items()))} (0: no answer in 10 s)")
    print(
        f"  answer time at {RATE}/s: p50 {statistics.median(steady) * 1000:.1f} ms, "
        f"p99 {percentile(steady, 0.99) * 1000:.1f} ms (target under 50 ms while cycles run); "
        f"the sender's own lag p99 {percentile(sorted(results.lags), 0.99) * 1000:.1f} ms"
    )
    print(
        f"  the burst of {BURST} at once: p50 {statistics.median(at_once) * 1000:.1f} ms, "
        f"slowest {at_once[-1] * 1000:.1f} ms"
    )
    every = sorted(steady + at_once)
    print(
        f"  all {len(every)} answers, the burst's too: p99 {percentile(every, 0.99) * 1000:.1f} ms"
    )
    print(
        f"  deliveries recorded: {total} of {RATE * SECONDS + 1} distinct "
        f"({'none lost' if total == RATE * SECONDS + 1 else 'LOST SOME'}); by state {rows}"
    )
    print(f"  5xx answers: {sum(n for s, n in statuses.items() if s >= 500)}")


if __name__ == "__main__":
    main()
