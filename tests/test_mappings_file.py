"""The mapping file: each kind of fault gives its message, exits 2, and leaves the store alone."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from certsync.errors import ConfigError
from certsync.mappings_file import load_mapping_file
from certsync.models import Policy, TypeMapping, UserMapping
from tests.conftest import CERTSYNC, clean_env

SAMPLE = Path(__file__).parent.parent / "config" / "mappings.toml"


def write(tmp_path: Path, text: str, csv: str | None = None) -> Path:
    path = tmp_path / "mappings.toml"
    path.write_text(text)
    if csv is not None:
        (tmp_path / "users.csv").write_text(csv)
    return path


def test_the_sample_file_is_valid() -> None:
    """config/mappings.toml, the documented sample, loads."""
    mf = load_mapping_file(SAMPLE)
    assert mf.types and mf.users
    assert mf.policy == Policy()


def test_a_full_file_with_csv(tmp_path: Path) -> None:
    """Policy, types, users by id and by email, and a users CSV relative to the file."""
    path = write(
        tmp_path,
        """
        users_csv = "users.csv"
        [policy]
        revoke = false
        max_revoke_fraction = 0.5
        [[types]]
        natecosmic = "food-safety"
        monotree = 12
        authoritative = true
        [[users]]
        natecosmic = "nc-1"
        monotree = 501
        [[users]]
        natecosmic = "nc-2"
        monotree_email = "John@Example.com"
        """,
        "natecosmic,monotree,monotree_email\nnc-3,503,\nnc-4,,ann@example.com\n",
    )
    mf = load_mapping_file(path)
    assert mf.policy == Policy(revoke=False, max_revoke_fraction=0.5)
    assert mf.types == (TypeMapping("food-safety", 12, True),)
    assert mf.users == (
        UserMapping("nc-1", 501),
        UserMapping("nc-2", None, "john@example.com"),
        UserMapping("nc-3", 503),
        UserMapping("nc-4", None, "ann@example.com"),
    )


@pytest.mark.parametrize(
    ("text", "csv", "message"),
    [
        ("[[types]\nnatecosmic = 1", None, "not valid TOML"),
        ("colour = 'red'", None, "key 'colour': unknown key"),
        (
            "[policy]\nrevoke = 'yes'",
            None,
            "[policy], key 'revoke': Input should be a valid boolean",
        ),
        (
            "[[types]]\nnatecosmic = 'food'\nmonotree = '12'",
            None,
            "[[types]] #1 (natecosmic = 'food'), key 'monotree': Input should be a valid integer",
        ),
        (
            "[[types]]\nnatecosmic = 'food'",
            None,
            "[[types]] #1 (natecosmic = 'food'), key 'monotree': required key is missing",
        ),
        (
            "[[users]]\nnatecosmic = 'u'\nmonotree = 1\nmonotree_email = 'a@b.c'",
            None,
            "give exactly one of 'monotree' and 'monotree_email'",
        ),
        (
            "[[types]]\nnatecosmic = 'food'\nmonotree = 12\n[[types]]\nnatecosmic = 'food'\nmonotree = 13",
            None,
            "conflict: Natecosmic type 'food' maps to template 12 and to template 13",
        ),
        (
            "[[users]]\nnatecosmic = 'u'\nmonotree = 1\n[[users]]\nnatecosmic = 'u'\nmonotree = 2",
            None,
            "conflict: Natecosmic user 'u' maps to Monotree user 1 and to Monotree user 2",
        ),
        (
            "[[users]]\nnatecosmic = 'u'\nmonotree = 1\n[[users]]\nnatecosmic = 'v'\nmonotree = 1",
            None,
            "conflict: Monotree user 1 is claimed by Natecosmic users 'u' and 'v'",
        ),
        ("users_csv = 'missing.csv'", None, "missing.csv: cannot read users CSV"),
        (
            "users_csv = 'users.csv'",
            "natecosmic,monotree\nu1,1\nu2,two\n",
            "users.csv line 3: monotree 'two' is not a whole number",
        ),
        (
            "users_csv = 'users.csv'",
            "natecosmic,monotree\nu1,\u00b2\n",
            "users.csv line 2: monotree '\u00b2' is not a whole number",
        ),
        # Rows the common-row shortcut must leave to the model, and its messages.
        (
            "users_csv = 'users.csv'",
            "natecosmic,monotree\nu1,1\nu2,0\n",
            "users.csv line 3: monotree: Input should be greater than 0",
        ),
        (
            "users_csv = 'users.csv'",
            "natecosmic,monotree\n ,5\n",
            "users.csv line 2: natecosmic: String should have at least 1 character",
        ),
        (
            "users_csv = 'users.csv'",
            "natecosmic,monotree,monotree_email\nu1,5,a@example.com\n",
            "users.csv line 2: give exactly one of 'monotree' and 'monotree_email'",
        ),
        (
            "users_csv = 'users.csv'",
            "natecosmic,monotree\nu1,1,extra\n",
            "users.csv line 2: more fields than the header has",
        ),
        (
            "users_csv = 'users.csv'",
            "who,what\nu1,1\n",
            "users.csv line 1: the header needs a 'natecosmic' column",
        ),
        (
            "users_csv = 'users.csv'",
            "natecosmic,monotree\nu1,1\nu1,2\n",
            "conflict: Natecosmic user 'u1'",
        ),
    ],
)
def test_each_fault_names_file_entry_and_problem(
    tmp_path: Path, text: str, csv: str | None, message: str
) -> None:
    """Bad TOML, unknown key, wrong type, missing key, conflicts, missing CSV, bad CSV rows."""
    path = write(tmp_path, text, csv)
    with pytest.raises(ConfigError) as exc:
        load_mapping_file(path)
    assert message in str(exc.value)
    assert str(tmp_path) in str(exc.value)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(
        st.tuples(
            st.text(st.characters(codec="ascii", exclude_characters=',"\r\n'), max_size=6),
            st.integers(min_value=1, max_value=10**9),
        ),
        min_size=1,
        max_size=8,
        unique_by=(lambda r: r[0].strip(), lambda r: r[1]),
    )
)
def test_csv_rows_by_id_load_as_written(tmp_path: Path, rows: list[tuple[str, int]]) -> None:
    """A row with a Monotree id loads as its trimmed natecosmic id and that id; a blank
    natecosmic id is refused, whichever way the row is read."""
    path = write(
        tmp_path,
        "users_csv = 'users.csv'",
        "natecosmic,monotree\n" + "".join(f"{nc},{mid}\n" for nc, mid in rows),
    )
    if any(not nc.strip() for nc, _ in rows):
        with pytest.raises(ConfigError, match="natecosmic: String should have at least 1"):
            load_mapping_file(path)
        return
    assert load_mapping_file(path).users == tuple(
        UserMapping(nc.strip(), mid, None) for nc, mid in rows
    )


def certsync_in(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """The installed command against a store of its own in `tmp_path`."""
    env = {**clean_env(), "CERTSYNC_DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CERTSYNC, *args], env=env, cwd=tmp_path, capture_output=True, text=True, check=False
        )

    return run


def test_an_invalid_file_leaves_the_store_untouched(tmp_path: Path) -> None:
    """`mappings import` of a broken file exits 2 with one line and does not change the store."""
    certsync = certsync_in(tmp_path)
    good = write(tmp_path, "[[types]]\nnatecosmic = 'food'\nmonotree = 12\n")
    ok = certsync("mappings", "import", str(good))
    assert ok.returncode == 0, ok.stderr
    assert "types +1" in ok.stdout
    before = certsync("mappings", "list", "--format", "json").stdout
    db_before = hashlib.sha256((tmp_path / "c.db").read_bytes()).hexdigest()

    bad = tmp_path / "bad.toml"
    bad.write_text("[[types]]\nnatecosmic = 'fire'\nmonotree = 'x'\n")
    result = certsync("mappings", "import", str(bad), "--prune")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "key 'monotree'" in result.stderr
    after = certsync("mappings", "list", "--format", "json").stdout
    assert after == before
    assert hashlib.sha256((tmp_path / "c.db").read_bytes()).hexdigest() == db_before


def test_mappings_list_and_prune_from_the_command_line(tmp_path: Path) -> None:
    """`mappings list` shows what was imported; `import --prune` says how many it removed."""
    certsync = certsync_in(tmp_path)
    first = write(
        tmp_path,
        "[[types]]\nnatecosmic = 'food'\nmonotree = 12\n[[types]]\nnatecosmic = 'fire'\nmonotree = 14\n",
    )
    assert certsync("mappings", "import", str(first)).returncode == 0
    table = certsync("mappings", "list")
    assert table.returncode == 0
    assert "food -> template 12" in table.stdout and "fire -> template 14" in table.stdout
    second = write(tmp_path, "[[types]]\nnatecosmic = 'food'\nmonotree = 12\n")
    out = certsync("mappings", "import", str(second), "--prune")
    assert out.returncode == 0 and "pruned 1" in out.stdout


def test_csv_columns_in_any_order_with_blank_lines_and_short_rows(tmp_path: Path) -> None:
    """Columns are found by their header, wherever they stand; a blank line is skipped
    and a row short of the header's last column reads it as empty."""
    path = write(
        tmp_path,
        "users_csv = 'users.csv'",
        "monotree_email, natecosmic ,monotree\n\n,u1, 5 \nB@Example.com,u2\n\n",
    )
    assert load_mapping_file(path).users == (
        UserMapping("u1", 5, None),
        UserMapping("u2", None, "b@example.com"),
    )
