"""The TOML mapping file (and its users CSV) -> validated mappings, or one clear error.

Every error names the file, the entry (or the CSV line) and what is wrong. Nothing
here touches the store: a file is validated whole before anything is imported.
"""

from __future__ import annotations

import csv
import hashlib
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from certsync import __version__
from certsync.errors import ConfigError
from certsync.models import Policy, TypeMapping, UserMapping, normal_email


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _PolicyIn(_Strict):
    revoke: bool = True
    notify_on_revoke: bool = False
    require_verified: bool = False
    max_revoke_fraction: float = Field(default=0.2, ge=0, le=1)
    max_revoke_min: int = Field(default=10, ge=0)
    revoke_unmapped: bool = False


class _TypeIn(_Strict):
    natecosmic: str = Field(min_length=1)
    monotree: int = Field(gt=0)
    authoritative: bool = False


class _UserIn(_Strict):
    natecosmic: str = Field(min_length=1)
    monotree: int | None = Field(default=None, gt=0)
    monotree_email: str | None = Field(default=None, min_length=3, pattern=r"^[^@\s]+@[^@\s]+$")

    @model_validator(mode="after")
    def _one_target(self) -> _UserIn:
        if (self.monotree is None) == (self.monotree_email is None):
            raise ValueError("give exactly one of 'monotree' and 'monotree_email'")
        return self


class _FileIn(_Strict):
    policy: _PolicyIn = _PolicyIn()
    types: list[_TypeIn] = []
    users: list[_UserIn] = []
    users_csv: str | None = None


@dataclass(frozen=True, slots=True)
class MappingFile:
    """A validated mapping file: policy, type mappings and user mappings (CSV included)."""

    path: Path
    policy: Policy
    types: tuple[TypeMapping, ...]
    users: tuple[UserMapping, ...]


def _where(loc: tuple[Any, ...], data: dict[str, Any]) -> str:
    """`[[types]] #2 (natecosmic = "food-safety"), field monotree` from a pydantic location."""
    if len(loc) >= 2 and loc[0] in ("types", "users") and isinstance(loc[1], int):
        entry = f"[[{loc[0]}]] #{loc[1] + 1}"
        try:
            key = data[loc[0]][loc[1]].get("natecosmic")
        except (KeyError, IndexError, AttributeError, TypeError):
            key = None
        if isinstance(key, str):
            entry += f" (natecosmic = {key!r})"
        rest = [str(p) for p in loc[2:] if not str(p).startswith("function-")]
        return entry + (f", key '{'.'.join(rest)}'" if rest else "")
    if loc and loc[0] == "policy":
        return "[policy]" + (f", key '{'.'.join(str(p) for p in loc[1:])}'" if loc[1:] else "")
    return "key '" + ".".join(str(p) for p in loc) + "'" if loc else "the file"


def _message(err: Any) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown key (not part of the mapping file format)"
    if err["type"] == "missing":
        return "required key is missing"
    return str(err["msg"]).removeprefix("Value error, ")


def _read_csv(path: Path, shown: str) -> list[UserMapping]:
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigError(f"{shown}: cannot read users CSV: {exc.strerror}") from None
    except ValueError as exc:  # a NUL byte in the path
        raise ConfigError(f"{shown!r}: not a usable users CSV path: {exc}") from None
    out: list[UserMapping] = []
    with handle:
        # Rows as lists, not DictReader's dicts: half the cost of reading 25,000 rows.
        reader = csv.reader(handle)
        try:
            header = [h.strip() for h in next(reader, [])]
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ConfigError(f"{shown} line 1: unreadable header: {exc}") from None
        if "natecosmic" not in header or not ({"monotree", "monotree_email"} & set(header)):
            raise ConfigError(
                f"{shown} line 1: the header needs a 'natecosmic' column and a 'monotree' "
                f"or 'monotree_email' column (found: {', '.join(header) or 'nothing'})"
            )
        unknown = set(header) - {"natecosmic", "monotree", "monotree_email"}
        if unknown:
            raise ConfigError(f"{shown} line 1: unknown column(s): {', '.join(sorted(unknown))}")
        # A column named twice: the last one counts, as it did for csv.DictReader.
        column = {name: i for i, name in enumerate(header)}
        width = len(header)

        def cell(row: list[str], name: str) -> str:
            i = column.get(name)
            return row[i].strip() if i is not None and i < len(row) else ""

        try:
            for row in reader:
                if not row:
                    continue  # a blank line, as csv.DictReader skipped it
                line = reader.line_num
                if len(row) > width:
                    raise ConfigError(f"{shown} line {line}: more fields than the header has")
                raw: dict[str, Any] = {"natecosmic": cell(row, "natecosmic")}
                monotree, email = cell(row, "monotree"), cell(row, "monotree_email")
                if monotree:
                    if not monotree.isdecimal():
                        raise ConfigError(
                            f"{shown} line {line}: monotree {monotree!r} is not a whole number"
                        )
                    raw["monotree"] = int(monotree)
                if email:
                    raw["monotree_email"] = email
                elif raw["natecosmic"] and raw.get("monotree", 0) > 0:
                    # The common row, valid as it stands: what the model below would
                    # make of it, without its cost (a third of reading 25,000 rows).
                    out.append(UserMapping(raw["natecosmic"], raw["monotree"], None))
                    continue
                try:
                    entry = _UserIn.model_validate(raw)
                except ValidationError as exc:
                    err = exc.errors()[0]
                    field = ".".join(str(p) for p in err["loc"])
                    prefix = f"{field}: " if field else ""
                    raise ConfigError(f"{shown} line {line}: {prefix}{_message(err)}") from None
                out.append(_user(entry))
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ConfigError(f"{shown} line {reader.line_num}: {exc}") from None
    return out


def _user(entry: _UserIn) -> UserMapping:
    return UserMapping(entry.natecosmic, entry.monotree, normal_email(entry.monotree_email))


def _check_conflicts(
    shown: str, types: Iterable[TypeMapping], users: Iterable[UserMapping]
) -> tuple[tuple[TypeMapping, ...], tuple[UserMapping, ...]]:
    by_type: dict[str, TypeMapping] = {}
    for t in types:
        seen = by_type.get(t.natecosmic)
        if seen is not None and seen != t:
            raise ConfigError(
                f"{shown}: conflict: Natecosmic type {t.natecosmic!r} maps to template "
                f"{seen.monotree} and to template {t.monotree}"
                if seen.monotree != t.monotree
                else f"{shown}: conflict: Natecosmic type {t.natecosmic!r} is listed twice "
                "with different 'authoritative' values"
            )
        by_type[t.natecosmic] = t
    by_user: dict[str, UserMapping] = {}
    claimed: dict[str, str] = {}
    for u in users:
        seen_u = by_user.get(u.natecosmic)
        target = f"Monotree user {u.monotree}" if u.monotree is not None else u.monotree_email
        if seen_u is not None and seen_u != u:
            before = (
                f"Monotree user {seen_u.monotree}"
                if seen_u.monotree is not None
                else seen_u.monotree_email
            )
            raise ConfigError(
                f"{shown}: conflict: Natecosmic user {u.natecosmic!r} maps to {before} "
                f"and to {target}"
            )
        by_user[u.natecosmic] = u
        key = str(target)
        other = claimed.get(key)
        if other is not None and other != u.natecosmic:
            raise ConfigError(
                f"{shown}: conflict: {target} is claimed by Natecosmic users "
                f"{other!r} and {u.natecosmic!r}"
            )
        claimed[key] = u.natecosmic
    return tuple(by_type.values()), tuple(by_user.values())


def source_digest(path: Path) -> str | None:
    """A digest of the mapping file and the users CSV it names, as bytes, and of this
    release (which reads them); None when they cannot be read (`load_mapping_file` then
    says why). Equal digests: the same mappings, without parsing 25,000 CSV rows again."""
    digest = hashlib.sha256(__version__.encode())
    try:
        raw = path.read_bytes()
        digest.update(raw)
        named = tomllib.loads(raw.decode("utf-8")).get("users_csv")
        if named is not None:
            digest.update(b"\0" + (path.parent / str(named)).read_bytes())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    return digest.hexdigest()


def load_mapping_file(path: Path) -> MappingFile:
    """Read and validate a mapping file and its users CSV; raise ConfigError on any fault."""
    shown = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{shown}: cannot read the mapping file: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{shown}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{shown}: not valid TOML: {exc}") from None
    try:
        parsed = _FileIn.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(f"{shown}: {_where(err['loc'], data)}: {_message(err)}") from None

    users = [_user(u) for u in parsed.users]
    if parsed.users_csv:
        csv_path = path.parent / parsed.users_csv
        users.extend(_read_csv(csv_path, str(csv_path)))
    types = [TypeMapping(t.natecosmic, t.monotree, t.authoritative) for t in parsed.types]
    types_out, users_out = _check_conflicts(shown, types, users)
    p = parsed.policy
    policy = Policy(
        revoke=p.revoke,
        notify_on_revoke=p.notify_on_revoke,
        require_verified=p.require_verified,
        max_revoke_fraction=p.max_revoke_fraction,
        max_revoke_min=p.max_revoke_min,
        revoke_unmapped=p.revoke_unmapped,
    )
    return MappingFile(path, policy, types_out, users_out)
