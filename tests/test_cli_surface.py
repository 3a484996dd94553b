"""The command's surface: help for every option, a closed pipe, a taken port, the image's files."""

from __future__ import annotations

import argparse
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from certsync.actions import HoldBack, Plan, Revoke
from certsync.cli.exit_codes import for_report
from certsync.cli.parser import build_parser
from certsync.engine.report import SyncReport
from certsync.errors import AuthError, RetriableError
from tests.conftest import CERTSYNC, clean_env
from tests.zygote import Zygote

ROOT = Path(__file__).parent.parent


def _commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    found = [(path, parser)]
    for action in parser._actions:  # argparse keeps its subcommands only here
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found += _commands(child, (*path, name))
    return found


@pytest.mark.parametrize("path", [p for p, _ in _commands(build_parser())][1:], ids=" ".join)
def test_every_command_and_option_is_described(path: tuple[str, ...]) -> None:
    parser = dict(_commands(build_parser()))[path]
    assert parser.description, f"certsync {' '.join(path)} has no description"
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            continue
        assert action.help, f"certsync {' '.join(path)} {action.dest} has no help"


def test_run_help_says_what_the_daemon_does(tmp_path: Path) -> None:
    result = subprocess.run(
        [CERTSYNC, "run", "--help"],
        env=clean_env(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0
    assert "/readyz" in result.stdout and "CERTSYNC_SCHEDULE__INTERVAL" in result.stdout


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    """`certsync status | head -1`: the reader leaves first; no traceback, no 'internal error'."""
    env = {**clean_env(), "CERTSYNC_DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}"}
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", f"{CERTSYNC} status --limit 50 | true"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.stderr == ""
    assert result.returncode == 141  # 128 + SIGPIPE, as for any command whose reader left


def test_the_sandbox_on_a_taken_port_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [CERTSYNC, "sandbox", "--natecosmic-port", str(port), "--monotree-port", "0"],
            env=clean_env(),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"certsync: error: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]


def test_the_image_carries_no_mapping_file_at_the_default_path() -> None:
    """A container started without its own file must fail clearly, not sync sample mappings."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY config" not in dockerfile


def test_the_repository_stands_on_its_own() -> None:
    """Code, tests and docs cite the project's own docs, not files a user does not have."""
    tracked = [
        str(path.relative_to(ROOT))
        for folder in ("src", "tests", "docs", "config")
        for path in (ROOT / folder).rglob("*")
        if path.is_file()
        and path.suffix in (".py", ".md", ".toml", ".sql", ".csv")
        and ".egg-info" not in str(path)
    ] + ["README.md", "SECURITY.md"]
    offenders = [
        name
        for name in tracked
        if name != "tests/test_cli_surface.py"
        and any(
            word in (ROOT / name).read_text(errors="replace")
            for word in ("SPEC.md", "shared/api", "shared/")
        )
    ]
    assert offenders == []


def test_generated_sandbox_files_are_ignored_by_git() -> None:
    ignored = (ROOT / ".gitignore").read_text().split()
    assert "sandbox-mappings.toml" in ignored


def test_ctrl_c_stops_the_sandbox_even_when_its_shell_ignored_sigint(tmp_path: Path) -> None:
    """A job started in the background by a shell without job control inherits SIGINT as
    ignored; the sandbox installs its own handler, so Ctrl-C (here SIGINT) still stops it."""
    sandbox = subprocess.Popen(
        [CERTSYNC, "sandbox", "--natecosmic-port", "0", "--monotree-port", "0"],
        env=clean_env(),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),  # noqa: PLW1509 - the point of the test
    )
    try:
        assert sandbox.stdout is not None
        for line in sandbox.stdout:
            if line.startswith("Press Ctrl-C"):
                break
        sandbox.send_signal(signal.SIGINT)
        assert sandbox.wait(timeout=20) == 0
    finally:
        sandbox.kill()


def _report(**fields: object) -> SyncReport:
    report = SyncReport(run_id="r", kind="incremental", dry_run=False)
    for name, value in fields.items():
        setattr(report, name, value)
    return report


_HELD = Plan(
    held_back_revokes=(Revoke(12, 501, owned=True),),
    held_back_reason="11 revocations, more than the guard allows",
    held_back_kind=HoldBack.MASS_REVOKE,
)


@pytest.mark.parametrize(
    ("report", "code"),
    [
        (_report(), 0),
        (_report(dry_run=True, plan=_HELD), 3),
        (
            _report(
                plan=Plan(held_back_revokes=_HELD.held_back_revokes, held_back_kind=HoldBack.POLICY)
            ),
            0,
        ),
        (_report(missing_templates=[99]), 1),
        (_report(error="monotree: 401", failure=AuthError("monotree", "401", status=401)), 2),
        (_report(error="natecosmic: 503", failure=RetriableError("natecosmic", "503")), 1),
        (_report(error="interrupted: KeyboardInterrupt"), 1),
    ],
    ids=["converged", "guard", "policy", "missing-template", "token", "api-down", "interrupted"],
)
def test_the_command_line_maps_each_outcome_to_its_documented_exit_code(
    report: SyncReport, code: int
) -> None:
    """docs/cli.md's table: the guard is 3, what the operator must fix is 2, a failure 1."""
    assert for_report(report) == code


@pytest.mark.e2e
def test_a_command_forked_by_the_tests_answers_as_the_installed_script_does(
    tmp_path: Path,
) -> None:
    """The suite's one-shot commands are forked from a warm interpreter (tests/zygote.py):
    for a success, a refused setting and a usage error, the same exit code and output."""
    zygote = Zygote()
    codes = []
    try:
        store = f"sqlite:///{tmp_path / 'c.db'}"
        for args, env in [
            (["status", "--format", "json"], {"CERTSYNC_DATABASE_URL": store}),
            (["status"], {"CERTSYNC_DATABASE_URL": "mysql://nope"}),
            (["sync", "--no-such-option"], {}),
            (["mappings", "list"], {"CERTSYNC_DATABASE_URL": store}),
        ]:
            full_env = {**clean_env(), **env}
            script = subprocess.run(
                [CERTSYNC, *args],
                env=full_env,
                cwd=tmp_path,
                capture_output=True,
                text=True,
                check=False,
            )
            forked = zygote.run(args, env=full_env, cwd=tmp_path, timeout=60)
            assert (forked.returncode, forked.stdout, forked.stderr) == (
                script.returncode,
                script.stdout,
                script.stderr,
            ), args
            codes.append(forked.returncode)
        assert codes == [0, 2, 2, 0]
    finally:
        zygote.close()
