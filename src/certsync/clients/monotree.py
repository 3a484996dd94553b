"""The Monotree client: the whole certificates API and the users endpoints.

Reads always ask for `per_page=50` (the maximum) and walk every page; holders
are read with `user_state` and turned into `Holding`s for the plan.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal, TypeVar

from pydantic import TypeAdapter, ValidationError

from certsync.clients.http import ApiHttp
from certsync.clients.pagination import (
    PER_PAGE,
    PageRequest,
    PaginationError,
    Paginator,
    page_numbers,
)
from certsync.errors import ResponseFormatError
from certsync.models import CertificateType, Holding, Template, User
from certsync.writes import AssignItem

T = TypeVar("T")

API = "monotree"
PREFIX = "/api/open/v1"
SCOPE_READ = "read:certificates"
SCOPE_WRITE = "write:certificates"
SCOPE_USERS = "read:users"


@dataclass(frozen=True, slots=True)
class UserState:
    has_certificate: bool = False
    issued_at: datetime | None = None
    expires_at: datetime | None = None
    is_expired: bool = False
    history: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class Holder:
    """One entry of `GET /certificates/{id}/users`."""

    user_id: int
    user_state: UserState = field(default_factory=UserState)
    email: str | None = None
    name: str | None = None

    def holding(
        self, certificate_id: int, now: datetime, days: dict[date, date] | None = None
    ) -> Holding:
        """The holding this entry says; with `days`, each date is one object shared by
        every holding on that day (a few hundred days among 95,000 holdings: 6 MB)."""
        state = self.user_state
        expired = state.is_expired or (state.expires_at is not None and state.expires_at <= now)
        issued = state.issued_at.date() if state.issued_at else None
        expires = state.expires_at.date() if state.expires_at else None
        if days is not None:
            issued = None if issued is None else days.setdefault(issued, issued)
            expires = None if expires is None else days.setdefault(expires, expires)
        return Holding(
            certificate_id=certificate_id,
            user_id=self.user_id,
            active=state.has_certificate and not expired,
            issued_on=issued,
            expires_on=expires,
        )


@dataclass(frozen=True, slots=True)
class UserCertificate:
    id: int
    title: str | None = None
    description: str | None = None
    validity_months: int | None = None
    issued_at: datetime | None = None
    expires_at: datetime | None = None
    is_expired: bool = False
    certificate_type: CertificateType | None = None
    history: tuple[dict[str, Any], ...] = ()


def user_holding(cert: UserCertificate, user_id: int, now: datetime) -> Holding:
    """A certificate from `GET /users/{id}/certificates` as the plan compares it."""
    expired = cert.is_expired or (cert.expires_at is not None and cert.expires_at <= now)
    return Holding(
        certificate_id=cert.id,
        user_id=user_id,
        active=not expired,
        issued_on=cert.issued_at.date() if cert.issued_at else None,
        expires_on=cert.expires_at.date() if cert.expires_at else None,
    )


_TEMPLATE = TypeAdapter(Template)
_USER = TypeAdapter(User)
_USER_CERT = TypeAdapter(UserCertificate)
_USER_STATE = TypeAdapter(UserState)


@dataclass(frozen=True, slots=True)
class HolderPage:
    """One page of holders and what its envelope says about the rest of the list."""

    holders: list[Holder]
    current_page: int | None
    last_page: int | None
    # Where a reader following links would go next (None: the list ends here).
    resume: tuple[Paginator, PageRequest | None]

    @property
    def has_more(self) -> bool:
        return self.resume[1] is not None


def parse_holder(raw: Any) -> Holder:
    """A holder item. Its shape is documented only as far as `user_state`, so the
    user id is read from `id` (a user object) or `user_id`, whichever is there."""
    if not isinstance(raw, dict):
        raise ResponseFormatError(API, "a holder item is not a JSON object")
    user_id = raw.get("user_id", raw.get("id"))
    if isinstance(raw.get("user"), dict) and user_id is None:
        user_id = raw["user"].get("id")
    if not isinstance(user_id, int) or isinstance(user_id, bool):
        raise ResponseFormatError(API, "a holder item has no integer 'id' or 'user_id'")
    try:
        state = _USER_STATE.validate_python(raw.get("user_state") or {})
    except ValidationError as exc:
        raise ResponseFormatError(
            API, f"holder {user_id}: bad user_state: {exc.errors()[0]['msg']}"
        ) from None
    email = raw.get("email") if isinstance(raw.get("email"), str) else None
    name = raw.get("name") if isinstance(raw.get("name"), str) else None
    return Holder(user_id, state, email, name)


def _one(adapter: TypeAdapter[T], body: object, what: str) -> T:
    data = body.get("data") if isinstance(body, dict) else None
    try:
        return adapter.validate_python(data)
    except ValidationError as exc:
        raise ResponseFormatError(API, f"{what}: {exc.errors()[0]['msg']}") from None


def _bool_param(value: bool | None) -> str | None:
    return None if value is None else ("true" if value else "false")


class MonotreeClient:
    """Typed calls for every documented Monotree endpoint certsync may use."""

    def __init__(self, http: ApiHttp) -> None:
        self._http = http

    # --- reads ------------------------------------------------------------------

    def _pages(
        self,
        path: str,
        params: Mapping[str, str | None] | None,
        scope: str,
        *,
        resume: tuple[Paginator, PageRequest | None] | None = None,
        endpoint: bool = False,
    ) -> Iterator[list[Any]]:
        """Every page, one after another; `resume` continues after pages already read."""
        base_params: dict[str, str | int] = {
            k: v for k, v in (params or {}).items() if v is not None
        }
        if resume is None:
            paginator = Paginator()
            request: PageRequest | None = paginator.start()
        else:
            paginator, request = resume
        while request is not None:
            query: dict[str, str | int] | None = None
            if request.url is not None:
                url = self._http.check_same_origin(request.url)
            else:
                url = self._http.url(PREFIX + path)
                query = {**base_params, "page": request.page or 1, "per_page": PER_PAGE}
            body = self._http.request("GET", url, params=query, scope=scope, endpoint=endpoint)
            try:
                items = paginator.items(body)
                yield items
                request = paginator.next_request(body, request)
            except PaginationError as exc:
                raise ResponseFormatError(API, f"GET {PREFIX}{path}: {exc}") from None

    def list_templates(
        self,
        *,
        is_published: bool | None = None,
        title: str | None = None,
        since: str | None = None,
    ) -> list[Template]:
        params = {"is_published": _bool_param(is_published), "title": title, "since": since}
        out: list[Template] = []
        for page in self._pages("/certificates", params, SCOPE_READ, endpoint=True):
            for raw in page:
                out.append(_one(_TEMPLATE, {"data": raw}, "certificate template"))
        return out

    def get_template(self, certificate_id: int) -> Template:
        body = self._get(f"/certificates/{certificate_id}", SCOPE_READ)
        return _one(_TEMPLATE, body, f"certificate {certificate_id}")

    def list_holders(self, certificate_id: int) -> list[Holder]:
        """Every holder, one page after another (`holders.read_holders` reads side by side)."""
        first = self.holder_page(certificate_id, 1)
        return first.holders + self.holders_after(certificate_id, first)

    def holder_page(self, certificate_id: int, page: int) -> HolderPage:
        """One page of a template's holders, asked for by number, so that pages of
        one template can be read side by side once the first tells how many there are."""
        path = f"/certificates/{certificate_id}/users"
        request = PageRequest(page=page)
        paginator = Paginator(seen={f"page={page}"})
        body = self._http.request(
            "GET",
            self._http.url(PREFIX + path),
            params={"page": page, "per_page": PER_PAGE},
            scope=SCOPE_READ,
        )
        try:
            items = paginator.items(body)
            following = paginator.next_request(body, request)
        except PaginationError as exc:
            raise ResponseFormatError(API, f"GET {PREFIX}{path}: {exc}") from None
        numbers = page_numbers(body)
        return HolderPage(
            holders=[parse_holder(raw) for raw in items],
            current_page=numbers[0],
            last_page=numbers[1],
            resume=(paginator, following),
        )

    def holders_after(self, certificate_id: int, first: HolderPage) -> list[Holder]:
        """The holders on the pages after `first`, following the links it gave: for
        servers whose pages do not say how many there are."""
        holders: list[Holder] = []
        path = f"/certificates/{certificate_id}/users"
        for page in self._pages(path, None, SCOPE_READ, resume=first.resume):
            holders.extend(parse_holder(raw) for raw in page)
        return holders

    def user_certificates(self, user_id: int) -> list[UserCertificate]:
        out: list[UserCertificate] = []
        for page in self._pages(f"/users/{user_id}/certificates", None, SCOPE_READ):
            out.extend(_one(_USER_CERT, {"data": raw}, "user certificate") for raw in page)
        return out

    def user_certificate(self, user_id: int, certificate_id: int) -> UserCertificate:
        body = self._get(f"/users/{user_id}/certificates/{certificate_id}", SCOPE_READ)
        return _one(_USER_CERT, body, "user certificate")

    def list_users(self, *, group_id: int | None = None) -> list[User]:
        params = {"group_id": None if group_id is None else str(group_id)}
        out: list[User] = []
        for page in self._pages("/users", params, SCOPE_USERS, endpoint=True):
            out.extend(_one(_USER, {"data": raw}, "user") for raw in page)
        return out

    def get_user(self, user_id: int) -> User:
        return _one(_USER, self._get(f"/users/{user_id}", SCOPE_USERS), "user")

    def _get(self, path: str, scope: str) -> Any:
        return self._http.request("GET", self._http.url(PREFIX + path), scope=scope)

    # --- writes -----------------------------------------------------------------

    def create_template(
        self,
        *,
        title: str,
        description: str | None = None,
        validity_months: int | None = None,
        reset_days_before_expiry: int | None = None,
        certificate_type_id: int | None = None,
        is_published: bool = False,
    ) -> Template:
        payload: dict[str, Any] = {"title": title, "is_published": is_published}
        optional = {
            "description": description,
            "validity_months": validity_months,
            "reset_days_before_expiry": reset_days_before_expiry,
            "certificate_type_id": certificate_type_id,
        }
        payload.update({k: v for k, v in optional.items() if v is not None})
        # Not idempotent: a second POST makes a second template.
        body = self._http.request(
            "POST",
            self._http.url(PREFIX + "/certificates"),
            json_body=payload,
            scope=SCOPE_WRITE,
            idempotent=False,
        )
        return _one(_TEMPLATE, body, "created certificate")

    def update_template(
        self,
        certificate_id: int,
        changes: Mapping[str, Any],
        *,
        method: Literal["PATCH", "PUT"] = "PATCH",
    ) -> Template:
        """Change only the fields in `changes` (Monotree treats PUT and PATCH alike)."""
        allowed = {
            "title",
            "description",
            "validity_months",
            "reset_days_before_expiry",
            "certificate_type_id",
            "is_published",
        }
        unknown = set(changes) - allowed
        if unknown:
            raise ValueError(f"not a template field: {', '.join(sorted(unknown))}")
        body = self._http.request(
            method,
            self._http.url(f"{PREFIX}/certificates/{certificate_id}"),
            json_body=dict(changes),
            scope=SCOPE_WRITE,
        )
        return _one(_TEMPLATE, body, f"certificate {certificate_id}")

    def delete_template(self, certificate_id: int) -> None:
        self._http.request(
            "DELETE", self._http.url(f"{PREFIX}/certificates/{certificate_id}"), scope=SCOPE_WRITE
        )

    def assign(self, items: Iterable[AssignItem]) -> None:
        """One `POST /certificates/assign` carrying many certificates and users."""
        by_cert: dict[int, list[dict[str, Any]]] = {}
        for item in items:
            by_cert.setdefault(item.certificate_id, []).append(
                {"user_id": item.user_id, "completed_at": item.completed_at.isoformat()}
            )
        payload = {
            "assignments": [
                {"certificate_id": cert, "users": users} for cert, users in sorted(by_cert.items())
            ]
        }
        self._http.request(
            "POST",
            self._http.url(PREFIX + "/certificates/assign"),
            json_body=payload,
            scope=SCOPE_WRITE,
        )

    def reset(
        self,
        certificate_id: int,
        *,
        user_ids: Iterable[int] | None = None,
        expire: bool = False,
        notify: bool = False,
    ) -> None:
        """Reset (and with `expire`, revoke) a certificate; no `user_ids` means every holder."""
        payload: dict[str, Any] = {"expire": expire, "notify": notify}
        if user_ids is not None:
            payload["user_ids"] = list(user_ids)
        self._http.request(
            "POST",
            self._http.url(f"{PREFIX}/certificates/{certificate_id}/reset"),
            json_body=payload,
            scope=SCOPE_WRITE,
        )
