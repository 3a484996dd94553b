"""What a person sees: `certsync sync` and `plan` in a real terminal (tmux), read off the screen."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from certsync.sandbox import SandboxState, World, generate
from tests.conftest import CERTSYNC, Cli

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]


@pytest.fixture
def world(sandbox_state: SandboxState, cli: Cli) -> World:
    w = generate(
        sandbox_state, users=8, types=2, seed=4, today=date.today(), email_every=2, inactive_share=0
    )
    # A mapping to a template Monotree does not have: a warning logged mid-run.
    extra = '\n[[types]]\nnatecosmic = "gone-type"\nmonotree = 999\n'
    (cli.cwd / "mappings.toml").write_text(w.mapping_toml + extra)
    return w


@pytest.fixture
def screen(cli: Cli) -> Iterator[Screen]:
    term = Screen(cli, f"certsync-{uuid.uuid4().hex[:8]}")
    yield term
    subprocess.run(["tmux", "kill-session", "-t", term.name], check=False, capture_output=True)


class Screen:
    """A 150x50 tmux window running one certsync command in the test's environment."""

    def __init__(self, cli: Cli, name: str) -> None:
        self.cli, self.name = cli, name

    def run(self, *args: str, timeout: float = 60) -> str:
        script = self.cli.cwd / f"{self.name}.sh"
        exports = "\n".join(
            f"export {k}={shlex.quote(v)}"
            for k, v in {**self.cli.env, "CERTSYNC_LOG_FORMAT": "auto"}.items()
        )
        command = " ".join(shlex.quote(a) for a in (CERTSYNC, *args))
        script.write_text(
            f"{exports}\ncd {shlex.quote(str(self.cli.cwd))}\n{command}\necho EXIT=$?\n"
        )
        subprocess.run(
            [
                *("tmux", "new-session", "-d", "-s", self.name, "-x", "150", "-y", "50"),
                *("bash", "--norc", "--noprofile", str(script)),
            ],
            check=True,
        )
        subprocess.run(["tmux", "set-option", "-t", self.name, "remain-on-exit", "on"], check=False)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.capture()
            if "EXIT=" in text:
                return text
            time.sleep(0.1)
        raise AssertionError(f"the command did not finish:\n{self.capture()}")

    def capture(self) -> str:
        done = subprocess.run(
            ["tmux", "capture-pane", "-p", "-S", "-100", "-t", self.name],
            capture_output=True,
            text=True,
            check=False,
        )
        return done.stdout


def test_sync_on_a_terminal_reads_cleanly(screen: Screen, world: World, cli: Cli) -> None:
    text = screen.run("sync")
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    assert "EXIT=1" in lines  # the missing template makes the run partial, and says so
    # The progress line is gone, and no line carries two things at once.
    assert not any("pulling certifications" in line for line in lines)
    assert not any("applying" in line or "applied " in line for line in lines)
    warnings = [line for line in lines if "sync.template_missing" in line]
    assert len(warnings) == 1 and warnings[0].lstrip().startswith("20")  # a line of its own
    # Info-level logs do not repeat what the table says.
    assert not any("sync.pulled" in line or "mappings.imported" in line for line in lines)
    # Names beside ids: template titles and the emails Monotree listed.
    assert any("template " in line and "'" in line and "@example.com" in line for line in lines)
    assert any("template 999 (mapped from 'gone-type')" in line for line in lines)
    summary = lines[lines.index("EXIT=1") - 2 : lines.index("EXIT=1")]
    assert summary[0].startswith("Plan: ") and summary[0].endswith(" unmanaged.")
    assert summary[1].startswith("Applied in ")
    assert summary[1].endswith("1 mapped template(s) missing in Monotree: fix their type mapping.")


def test_plan_on_a_terminal_ends_with_the_summary(screen: Screen, world: World) -> None:
    text = screen.run("plan")
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    end = lines.index("EXIT=1")
    assert lines[end - 2].startswith("Plan: ") and " to assign" in lines[end - 2]
    assert lines[end - 1].startswith("Dry run: nothing written")
    assert not Path(screen.cli.cwd / "certsync.db").exists()


def test_explain_on_a_terminal_reads_as_sections(screen: Screen, world: World, cli: Cli) -> None:
    cli("sync")  # exit 1: the missing template; everything else converges
    text = screen.run("explain", world.user_ids[1])
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    assert "EXIT=0" in lines
    start = next(i for i, line in enumerate(lines) if line.startswith("Monotree user "))
    assert f"Monotree user {world.monotree_ids[1]} (Natecosmic {world.user_ids[1]})" == lines[start]
    assert lines[start + 1] == "next sync: assign 0, renew 0, revoke 0, held back 0"
    records = lines.index(next(line for line in lines if line.startswith("Natecosmic records (")))
    holdings = lines.index(
        next(line for line in lines if line.startswith("Monotree certificates ("))
    )
    body = lines[records + 1 : holdings]
    # Each record: its line, then mapping, held and next sync, indented under it.
    assert len(body) % 4 == 0 and body
    for i in range(0, len(body), 4):
        assert [b.split(":")[0].strip() for b in body[i + 1 : i + 4]] == [
            "mapping",
            "held",
            "next sync",
        ]
    assert any("certsync's: yes, issued" in line for line in lines[holdings:])
    assert all(len(line) <= 150 for line in lines)
    assert not any('"event"' in line or "Traceback" in line for line in lines)
