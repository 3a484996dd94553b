"""Hostile input: parsers and loaders raise nothing but certsync's own errors, whatever they get."""

from __future__ import annotations

import contextlib
import json
import string
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from certsync.clients.http import ApiHttp
from certsync.clients.natecosmic import (
    parse_certifications,
    parse_certifications_stream,
    parse_record,
)
from certsync.clients.pagination import PaginationError, Paginator
from certsync.errors import ConfigError, ResponseFormatError
from certsync.mappings_file import load_mapping_file
from certsync.models import CertificationRecord, RejectedRecord
from tests.conftest import NATECOSMIC
from tests.test_natecosmic import record

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)
FIELDS = list(record().keys())


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_the_pull_parser_takes_any_json(body: Any) -> None:
    """Any JSON value as a whole body: a Pull or a ResponseFormatError, nothing else."""
    try:
        pull = parse_certifications(body)
    except ResponseFormatError:
        return
    assert all(isinstance(r, CertificationRecord) for r in pull.records)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=len(FIELDS)))
def test_a_record_with_any_field_values_is_parsed_or_rejected(overrides: dict[str, Any]) -> None:
    """Documented fields holding any JSON: the record parses or is rejected with a reason."""
    parsed = parse_record(0, record(**overrides))
    assert isinstance(parsed, CertificationRecord | RejectedRecord)
    if isinstance(parsed, RejectedRecord):
        assert parsed.reason


@pytest.mark.parametrize(
    "value",
    [
        "x" * 1_000_000,
        "ünïcødé-🎓-証明書",
        "\x00\x01",
        10**400,
        -1,
        1e308,
        "9999-12-31",
        "0001-01-01",
    ],
)
def test_huge_and_strange_values_are_handled(value: Any) -> None:
    """Megabyte strings, unicode, control characters, huge numbers, extreme dates."""
    for field in (
        "user_id",
        "issued_on",
        "expires_on",
        "certification_type_id",
        "lifecycle_status",
    ):
        parsed = parse_record(0, record(**{field: value}))
        assert isinstance(parsed, CertificationRecord | RejectedRecord)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_the_paginator_takes_any_envelope(body: Any) -> None:
    """Any page body: items and a next page, or a PaginationError."""
    paginator = Paginator()
    current = paginator.start()
    try:
        paginator.items(body)
        paginator.next_request(body, current)
    except PaginationError:
        pass


@respx.mock
def test_deeply_nested_json_is_a_format_error(make_http: Any) -> None:
    """A body nested 100,000 levels deep is refused cleanly, not a RecursionError."""
    respx.get(f"{NATECOSMIC}/v1/certifications").mock(
        return_value=httpx.Response(200, content=b"[" * 100_000 + b"]" * 100_000)
    )
    http: ApiHttp = make_http("natecosmic", NATECOSMIC)
    with pytest.raises(ResponseFormatError):
        http.request("GET", f"{NATECOSMIC}/v1/certifications", scope="x")


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(max_size=400) | st.text(max_size=400).map(str.encode))
def test_the_mapping_file_loader_takes_any_bytes(tmp_path: Path, content: bytes) -> None:
    """Any bytes as a mapping file: a MappingFile or a ConfigError."""
    path = tmp_path / "m.toml"
    path.write_bytes(content)
    with contextlib.suppress(ConfigError):
        load_mapping_file(path)


toml_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.text(alphabet=string.printable, max_size=20)
    | st.floats(allow_nan=False, allow_infinity=False)
)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["types", "users", "policy"]),
            st.dictionaries(
                st.sampled_from(
                    [
                        "natecosmic",
                        "monotree",
                        "monotree_email",
                        "authoritative",
                        "revoke",
                        "max_revoke_min",
                        "max_revoke_fraction",
                        "weird",
                    ]
                ),
                toml_scalars.filter(lambda v: v is not None),
                max_size=4,
            ),
        ),
        max_size=6,
    )
)
def test_the_mapping_file_loader_takes_any_structure(
    tmp_path: Path, tables: list[tuple[str, dict[str, Any]]]
) -> None:
    """Well-formed TOML with any keys and values: a MappingFile or a ConfigError."""
    lines = []
    for name, values in tables:
        lines.append("[policy]" if name == "policy" else f"[[{name}]]")
        lines += [f"{k} = {toml_value(v)}" for k, v in values.items()]
    path = tmp_path / "m.toml"
    path.write_text("\n".join(lines))
    with contextlib.suppress(ConfigError):
        load_mapping_file(path)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.binary(max_size=300)
    | st.text(max_size=300).map(lambda t: ("natecosmic,monotree,monotree_email\n" + t).encode())
)
def test_the_users_csv_takes_any_bytes(tmp_path: Path, content: bytes) -> None:
    """Any bytes as the users CSV: mappings or a ConfigError naming the CSV."""
    (tmp_path / "m.toml").write_text('users_csv = "users.csv"\n')
    (tmp_path / "users.csv").write_bytes(content)
    error: ConfigError | None = None
    try:
        load_mapping_file(tmp_path / "m.toml")
    except ConfigError as exc:
        error = exc
    assert error is None or "users.csv" in str(error) or "conflict" in str(error)


@pytest.mark.parametrize("csv_name", ["nul\x00.csv", "/", "."])
def test_a_strange_csv_path_is_a_config_error(tmp_path: Path, csv_name: str) -> None:
    """A users_csv that is a folder or holds a NUL byte is a ConfigError."""
    (tmp_path / "m.toml").write_text(f"users_csv = {json.dumps(csv_name)}\n")
    with pytest.raises(ConfigError):
        load_mapping_file(tmp_path / "m.toml")


def chunked(body: bytes, sizes: list[int]) -> list[bytes]:
    out, at = [], 0
    for size in sizes:
        out.append(body[at : at + size])
        at += size
    return [*out, body[at:]]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=4), max_size=5),
    st.lists(st.integers(1, 700), max_size=30),
)
def test_the_streaming_parser_agrees_with_the_object_parser(
    overrides: list[dict[str, Any]], cuts: list[int]
) -> None:
    """Cut anywhere into chunks, the streamed body parses exactly as the decoded body does."""
    body = json.dumps(
        {
            "meta": {"n": [1, 2.5]},
            "data": [record(**{"id": f"r{i}", **o}) for i, o in enumerate(overrides)],
            "z": "ü",
        }
    ).encode()
    streamed = parse_certifications_stream(chunked(body, cuts))
    decoded = parse_certifications(json.loads(body))
    assert streamed.records == decoded.records
    assert streamed.rejected == decoded.rejected


@settings(max_examples=300, deadline=None)
@given(json_values, st.lists(st.integers(1, 50), max_size=10))
def test_the_streaming_parser_takes_any_json(body: Any, cuts: list[int]) -> None:
    """Any JSON value, cut anywhere: the same outcome as the decoded-object parser."""
    raw = json.dumps(body).encode()
    try:
        expected: Any = parse_certifications(body)
    except ResponseFormatError:
        expected = ResponseFormatError
    try:
        got: Any = parse_certifications_stream(chunked(raw, cuts))
    except ResponseFormatError:
        got = ResponseFormatError
    assert got == expected


@pytest.mark.parametrize(
    "body",
    [
        b"<html></html>",
        b'{"data": [',
        b"[]",
        b'{"items": []}',
        b'"text"',
        b"",
        b'{"data": []} trailing',
        b'{"data": [1] "x"}',
        b'{"data": [], "data": []}',
        b"\xff\xfe",
    ],
)
def test_the_streaming_parser_refuses_what_is_not_the_envelope(body: bytes) -> None:
    """HTML, truncated JSON, the wrong envelope, trailing bytes, bad UTF-8: the pull fails."""
    with pytest.raises(ResponseFormatError):
        parse_certifications_stream(chunked(body, [3]))


def test_a_number_split_across_chunks_is_read_whole() -> None:
    """A number cut between two chunks is not read as its first half."""
    pull = parse_certifications_stream([b'{"count": 12', b'34, "data": []}'])
    assert pull.records == ()
