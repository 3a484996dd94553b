"""Shared fixtures: a fake clock for retries, HTTP sessions for respx, a live sandbox, the CLI."""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import structlog

from certsync.clients.counting import RequestCounter
from certsync.clients.credentials import Credential
from certsync.clients.http import ApiHttp
from certsync.clients.pacing import Pacer
from certsync.clients.retry import Timing
from certsync.redaction import Redactor
from certsync.sandbox import Sandbox, SandboxState, World
from certsync.settings import ClientSettings, Settings, load_settings
from certsync.store import Store
from tests.zygote import Zygote

if TYPE_CHECKING:
    from tests.postgres import Postgres

NATECOSMIC = "https://api.natecosmic.com"
MONOTREE = "https://acme.monotree.com"
N_TOKEN = "nc_unit_test_token_0123456789"
M_TOKEN = "mono_unit_test_token_9876543210"
CERTSYNC = str(Path(sys.executable).with_name("certsync"))


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    """A test that configures logging onto a captured stream must not leave it behind."""
    yield
    structlog.reset_defaults()


@dataclass
class FakeTime:
    """A clock that only moves when something sleeps: retries and pacing cost no real time."""

    now: float = 1_800_000_000.0
    sleeps: list[float] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A real PostgreSQL, started on first use and always stopped (see tests/postgres.py)."""
    from tests.postgres import Postgres

    # Not under pytest's temporary folder: as root, pgserver runs PostgreSQL as a user
    # of its own and opens the folders above the data to it, and any pytest session
    # started meanwhile closes /tmp/pytest-of-root again (0700): initdb failed mid-way.
    root = Path(tempfile.mkdtemp(prefix="certsync-postgres-"))
    server = Postgres(root)
    try:
        yield server
    finally:
        server.close()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The store suite runs on both engines: an SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'certsync.db'}"
    server: Postgres = request.getfixturevalue("postgres")
    return server.new_database()


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """A store on each engine in turn (`store_url`), closed afterwards."""
    s = Store(store_url)
    yield s
    s.close()


@pytest.fixture
def make_http(fake_time: FakeTime) -> Iterator[Callable[..., ApiHttp]]:
    clients: list[httpx.Client] = []

    def make(
        api: str = "monotree",
        base_url: str = MONOTREE,
        credential: Credential | None = None,
        **settings: object,
    ) -> ApiHttp:
        token = M_TOKEN if api == "monotree" else N_TOKEN
        client = httpx.Client()
        clients.append(client)
        return ApiHttp(
            api=api,
            base_url=base_url,
            credential=credential or Credential.fixed(api, token, Redactor()),
            client=client,
            settings=ClientSettings(**settings),
            counter=RequestCounter(),
            pacer=Pacer(clock=fake_time.clock, sleep=fake_time.sleep),
            timing=Timing(
                sleep=fake_time.sleep,
                clock=fake_time.clock,
                wall_clock=fake_time.clock,
                rand=lambda: 1.0,
            ),
        )

    yield make
    for c in clients:
        c.close()


@pytest.fixture
def sandbox_state() -> SandboxState:
    """A sandbox with Monotree's rate limit off, so tests are not paced; tests that want it set it."""
    return SandboxState(rate_limit=None)


@pytest.fixture
def sandbox(sandbox_state: SandboxState) -> Iterator[Sandbox]:
    with Sandbox(sandbox_state) as running:
        yield running


@dataclass
class Cli:
    """Runs the installed `certsync` command against a sandbox, in a folder of its own."""

    env: dict[str, str]
    cwd: Path

    def __call__(
        self, *args: str, timeout: float = 60, **extra_env: str
    ) -> subprocess.CompletedProcess[str]:
        zygote = _zygote()
        if zygote is not None:
            return zygote.run(args, env={**self.env, **extra_env}, cwd=self.cwd, timeout=timeout)
        return subprocess.run(
            [CERTSYNC, *args],
            env={**self.env, **extra_env},
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def settings(self) -> Settings:
        """The settings the command runs with, for a cycle run in this process."""
        return load_settings(
            natecosmic={
                "base_url": self.env["CERTSYNC_NATECOSMIC__BASE_URL"],
                "token": self.env["CERTSYNC_NATECOSMIC__TOKEN"],
            },
            monotree={
                "base_url": self.env["CERTSYNC_MONOTREE__BASE_URL"],
                "token": self.env["CERTSYNC_MONOTREE__TOKEN"],
            },
            database_url=self.env["CERTSYNC_DATABASE_URL"],
            mappings_file=self.cwd / "mappings.toml",
            secrets_dir=self.cwd,
        )

    def using(self, env: Mapping[str, str]) -> Cli:
        """The same command and folder with `env` on top of the environment."""
        return replace(self, env={**self.env, **env})

    def popen(self, *args: str, log: Path | None = None, **extra_env: str) -> subprocess.Popen[str]:
        """Start a command; its output in pipes, or in the file `log` for one that runs
        long (nobody reads a pipe meanwhile, and a full one would block the process)."""
        out: Any = subprocess.PIPE
        if log is not None:
            out = log.open("a")
        try:
            return subprocess.Popen(
                [CERTSYNC, *args],
                env={**self.env, **extra_env},
                cwd=self.cwd,
                stdout=out,
                stderr=subprocess.STDOUT if log is not None else subprocess.PIPE,
                text=True,
            )
        finally:
            if log is not None:
                out.close()


_ZYGOTES: list[Zygote] = []
_ZYGOTE_STARTING = threading.Lock()


def _zygote() -> Zygote | None:
    """This worker's zygote (tests/zygote.py), started at the first command; None when
    TESTS_NO_FORK=1 asks for the installed script every time."""
    if os.environ.get("TESTS_NO_FORK") == "1":
        return None
    with _ZYGOTE_STARTING:
        if not _ZYGOTES:
            _ZYGOTES.append(Zygote())
            atexit.register(_ZYGOTES[0].close)
        return _ZYGOTES[0]


def clean_env() -> dict[str, str]:
    """The test process's environment without any CERTSYNC_ setting of the developer's."""
    return {k: v for k, v in os.environ.items() if not k.startswith("CERTSYNC_")}


@pytest.fixture
def cli(sandbox: Sandbox, tmp_path: Path) -> Cli:
    env = {
        **clean_env(),
        **sandbox.env(),
        "CERTSYNC_DATABASE_URL": f"sqlite:///{tmp_path / 'certsync.db'}",
        "CERTSYNC_MAPPINGS_FILE": str(tmp_path / "mappings.toml"),
        "CERTSYNC_SECRETS_DIR": str(tmp_path / "no-secrets"),
        "CERTSYNC_CLIENT__BACKOFF_BASE": "0.01",
        "CERTSYNC_CLIENT__BACKOFF_MAX": "0.05",
        "CERTSYNC_LOG_FORMAT": "json",
    }
    return Cli(env, tmp_path)


def venv_tool(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    """A checker installed beside this Python (yamllint, check-jsonschema), its output kept."""
    return subprocess.run(
        [str(Path(sys.executable).with_name(name)), *args],
        capture_output=True,
        text=True,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def daemons(cli: Cli) -> Iterator[Callable[..., tuple[subprocess.Popen[str], str]]]:
    started: list[subprocess.Popen[str]] = []

    def start(log: Path | None = None, **env: str) -> tuple[subprocess.Popen[str], str]:
        port = free_port()
        defaults = {
            "CERTSYNC_SCHEDULE__INTERVAL": "1",
            "CERTSYNC_HTTP__HOST": "127.0.0.1",
            "CERTSYNC_HTTP__PORT": str(port),
            "CERTSYNC_SYNC__LOCK_TIMEOUT": "0.5",
        }
        proc = cli.popen("run", log=log, **{**defaults, **env})
        started.append(proc)
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(base), what="the health listener")
        return proc, base

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _answers(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def metric_sum(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def revoke_upstream(state: SandboxState, world: World, index: int = 0) -> tuple[int, int]:
    """Revoke one record in Natecosmic; the (certificate, user) pair it made desired."""
    with state.lock:
        record = state.records[index]
        state.records[index] = {**record, "lifecycle_status": "revoked"}
    return (
        world.template_ids[world.type_ids.index(record["certification_type_id"])],
        world.monotree_ids[world.user_ids.index(record["user_id"])],
    )


def mocked_api_settings(
    folder: Path,
    mappings_toml: str,
    *,
    tokens: tuple[str, str] = (N_TOKEN, M_TOKEN),
    **overrides: object,
) -> Settings:
    """Settings for a run against respx-mocked APIs: a mapping file and a store in `folder`."""
    (folder / "m.toml").write_text(mappings_toml)
    return load_settings(
        natecosmic={"base_url": NATECOSMIC, "token": tokens[0]},
        monotree={"base_url": MONOTREE, "token": tokens[1]},
        database_url=f"sqlite:///{folder / 'c.db'}",
        mappings_file=folder / "m.toml",
        secrets_dir=folder,
        **overrides,
    )
