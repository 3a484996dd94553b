"""The Natecosmic client: `GET /v1/certifications`, parsed record by record."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError

from certsync.clients.conditional import Body, Validators
from certsync.clients.http import ApiHttp
from certsync.clients.jsonstream import iter_data_items
from certsync.clients.records import Lean, WireRecord, fast_records
from certsync.errors import ResponseFormatError
from certsync.models import CertificationRecord, Pull, RejectedRecord

API = "natecosmic"
SCOPE_READ = "certification_records:read"

_RECORD = TypeAdapter(WireRecord)


def _reason(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_input=False, include_url=False)[:3]:
        where = ".".join(str(p) for p in err["loc"]) or "record"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def parse_record(
    index: int, raw: Any, lean: Lean | None = None
) -> CertificationRecord | RejectedRecord:
    """One record, or the reason it was rejected. Unknown fields are ignored."""
    record_id = raw.get("id") if isinstance(raw, dict) else None
    record_id = record_id if isinstance(record_id, str) else None
    if not isinstance(raw, dict):
        return RejectedRecord(index, None, f"record is a {type(raw).__name__}, not an object")
    try:
        wire = _RECORD.validate_python(raw)
    except ValidationError as exc:
        return RejectedRecord(index, record_id, _reason(exc))
    return _checked(index, (lean or Lean())(wire))


def _checked(index: int, record: CertificationRecord) -> CertificationRecord | RejectedRecord:
    """What the schema cannot say: ids are not blank and the type can be identified."""
    if not record.id.strip() or not record.user_id.strip():
        return RejectedRecord(index, record.id, "id and user_id must not be empty")
    if not record.type_keys():
        return RejectedRecord(
            index, record.id, "no certification_type_id nor certification_type.slug"
        )
    return record


def parse_certifications(body: Any) -> Pull:
    """The whole list. A body that is not `{"data": [...]}` is an error, never an empty pull."""
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise ResponseFormatError(
            API, "GET /v1/certifications did not answer with a JSON object holding a 'data' list"
        )
    return _collect(body["data"])


def parse_certifications_stream(chunks: Iterable[bytes]) -> Pull:
    """The same as `parse_certifications`, from the body's bytes as they arrive: the
    reference decoder, record by record, never holding the body whole."""
    try:
        return _collect(iter_data_items(chunks))
    except (ValueError, RecursionError) as exc:
        raise ResponseFormatError(
            API, f"GET /v1/certifications answered a body that is not the documented JSON: {exc}"
        ) from None


def decode_pull(body: Body, *, printed: bool = False) -> Pull:
    """A pull's body: by the fast decoder when it can read it, else by the reference one
    (`records.py`), which rejects what is invalid and says why. With `printed`, each
    record's print too, when every record was read and kept (`Pull.prints`)."""
    fast = fast_records(body.chunks(), printed=printed)
    if fast is None:
        return parse_certifications_stream(body.chunks())
    records, prints = fast
    pull = _collect(records)
    # A record rejected (a duplicate id) leaves the prints out of step with the records.
    return pull if pull.rejected else Pull(pull.records, (), prints)


def _collect(items: Iterable[Any]) -> Pull:
    records: list[CertificationRecord] = []
    rejected: list[RejectedRecord] = []
    seen_ids: set[str] = set()
    lean = Lean()
    for index, raw in enumerate(items):
        if isinstance(raw, CertificationRecord):
            parsed = _checked(index, raw)
        else:
            parsed = parse_record(index, raw, lean)
        if isinstance(parsed, RejectedRecord):
            rejected.append(parsed)
        elif parsed.id in seen_ids:
            rejected.append(RejectedRecord(index, parsed.id, "duplicate record id in the pull"))
        else:
            seen_ids.add(parsed.id)
            records.append(parsed)
    return Pull(tuple(records), tuple(rejected))


@dataclass(frozen=True, slots=True)
class Fetched:
    """A pull as Natecosmic answered it: `body` is None when it has not changed since the
    one the validators sent named (304 Not Modified); `validators` name this body."""

    body: Body | None
    validators: Validators


class NatecosmicClient:
    """Reads certifications from Natecosmic through the shared HTTP layer."""

    def __init__(self, http: ApiHttp) -> None:
        self._http = http

    @property
    def base_url(self) -> str:
        return self._http.base_url

    def fetch_certifications(self, validators: Validators | None = None) -> Fetched:
        """The list's body, kept aside and hashed, unless it is unchanged since the body
        `validators` named. The caller decodes it (`decode_pull`) and closes it."""
        body, answered = self._http.stream(
            self._http.url("/v1/certifications"),
            scope=SCOPE_READ,
            consume=Body.read,
            validators=validators,
            endpoint=True,
        )
        return Fetched(body, answered)

    def list_certifications(self) -> Pull:
        """The whole list, asked for without a validator."""
        body = self.fetch_certifications().body
        if body is None:  # the HTTP layer refuses a 304 to a request without one
            raise ResponseFormatError(API, "GET /v1/certifications answered 304 unasked")
        with body:
            return decode_pull(body)
