"""The container image, checked without a Docker engine: what it copies, runs and installs."""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import sys
from pathlib import Path

from pydantic import BaseModel

from certsync.settings import Settings
from tests.conftest import venv_tool

ROOT = Path(__file__).parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def instructions(name: str) -> list[str]:
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    return [line.split(None, 1)[1] for line in joined.splitlines() if line.startswith(name + " ")]


def pins(lock: Path) -> dict[str, str]:
    return dict(re.findall(r"^([a-z0-9_.-]+)==([^ \\]+)", lock.read_text(), flags=re.M))


def test_entrypoint_cmd_and_healthcheck() -> None:
    """ENTRYPOINT certsync, CMD run, and a HEALTHCHECK that runs certsync's own healthcheck."""
    assert json.loads(instructions("ENTRYPOINT")[0]) == ["certsync"]
    assert json.loads(instructions("CMD")[0]) == ["run"]
    assert instructions("HEALTHCHECK")[0].endswith('CMD ["certsync", "healthcheck"]')


def test_runs_as_non_root_with_data_volume_and_pinned_base() -> None:
    """A numeric non-root user, /data as the volume and the store there, a base pinned by version."""
    assert instructions("USER") == ["10001:10001"]
    assert json.loads(instructions("VOLUME")[0]) == ["/data"]
    assert "CERTSYNC_DATABASE_URL=sqlite:////data/certsync.db" in " ".join(instructions("ENV"))
    assert re.search(r"ARG PYTHON_IMAGE=python:\d+\.\d+\.\d+-slim-\w+", DOCKERFILE)
    assert len(instructions("FROM")) == 2  # multi-stage


def test_dependencies_come_from_the_hashed_lock_and_no_secret_is_baked_in() -> None:
    """pip installs with --require-hashes from requirements.lock; no token in any layer."""
    runs = " ".join(instructions("RUN"))
    assert "--require-hashes -r requirements.lock" in runs
    assert "TOKEN" not in DOCKERFILE.upper().replace("TOKENS", "")


def test_every_copied_path_exists_and_passes_dockerignore() -> None:
    """Each COPY source is in the repository and not excluded by .dockerignore."""
    patterns = [
        p for p in (ROOT / ".dockerignore").read_text().splitlines() if p and not p.startswith("#")
    ]

    def included(path: str) -> bool:
        keep = True
        for pattern in patterns:
            negate = pattern.startswith("!")
            pat = pattern.lstrip("!").rstrip("/")
            if fnmatch.fnmatch(path, pat) or path.startswith(pat + "/"):
                keep = negate
        return keep

    for copy in instructions("COPY"):
        if copy.startswith("--from"):
            continue
        *sources, _ = copy.split()
        for source in sources:
            assert (ROOT / source).exists(), source
            assert included(source.rstrip("/")), f"{source} is excluded by .dockerignore"


def test_the_runtime_lock_matches_the_tested_versions() -> None:
    """Every package the image pins is pinned to the same version the test suite runs on."""
    runtime, dev = pins(ROOT / "requirements.lock"), pins(ROOT / "requirements-dev.lock")
    assert runtime and {k: dev.get(k) for k in runtime} == runtime


def test_certsync_builds_without_network_or_build_isolation(tmp_path: Path) -> None:
    """The image's `pip install --no-deps --no-build-isolation .` step works offline."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert list(tmp_path.glob("certsync-*.whl"))


def _setting_names(model: type[BaseModel], prefix: str = "CERTSYNC_") -> set[str]:
    names = set()
    for name, field in model.model_fields.items():
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            names |= _setting_names(kind, f"{prefix}{name.upper()}__")
        else:
            names.add(f"{prefix}{name.upper()}")
    return names


# Read by the test suite and the benchmark, not by certsync.
_TEST_KNOBS = {"CERTSYNC_CRASH_KILLS", "CERTSYNC_SOAK_CYCLES", "CERTSYNC_FAILOVER_POINTS"}


def test_every_setting_the_docs_and_examples_name_exists() -> None:
    """A variable misspelt in the README, a doc, the Dockerfile or a compose file is
    silently ignored by certsync; here it fails."""
    known = _setting_names(Settings) | _TEST_KNOBS
    files = [
        ROOT / "README.md",
        ROOT / "Dockerfile",
        ROOT / "docker-compose.yml",
        ROOT / "SECURITY.md",
    ]
    files += sorted((ROOT / "docs").glob("*.md")) + sorted((ROOT / "deploy").rglob("*.y*ml"))
    named = {
        (path.name, match)
        for path in files
        for match in re.findall(r"CERTSYNC_[A-Z0-9_]*[A-Z0-9]", path.read_text())
    }
    assert len(named) > 30
    assert sorted(n for n in named if n[1] not in known) == []


def test_the_compose_examples_follow_the_compose_specification() -> None:
    """The schema check-jsonschema carries, offline: no Docker engine runs here."""
    result = venv_tool(
        "check-jsonschema",
        "--builtin-schema",
        "vendor.compose-spec",
        str(ROOT / "docker-compose.yml"),
        str(ROOT / "deploy" / "compose-ha.yml"),
    )
    assert result.returncode == 0, result.stdout + result.stderr
