"""certsync's one error tree, grouped by what the caller must do about it.

Clients translate every httpx exception into one of these at the boundary, so
`plan`, `apply` and `sync` never see an HTTP library type. An error says whether
the operator must change something (`operator_must_fix`); the command line alone
turns that into an exit code (`certsync.cli.exit_codes`).
"""

from __future__ import annotations


class CertsyncError(Exception):
    """Base of every error certsync raises on purpose."""

    # A setting, a file or a token is wrong: waiting and retrying will not help.
    operator_must_fix = False


class ConfigError(CertsyncError):
    """A setting, a mapping file or a command line is wrong: the operator must fix it."""

    operator_must_fix = True


class StoreError(CertsyncError):
    """The mapping store cannot be used as it is (newer schema, corrupt file, read-only)."""

    operator_must_fix = True


class LockBusyError(CertsyncError):
    """Another certsync process holds the writer lock of this store."""


class LeaseLostError(CertsyncError):
    """Another certsync took the store's writer lease while this one held it: the cycle
    stopped before its next write."""


class StalePlanError(CertsyncError):
    """A saved plan whose actions the current state no longer calls for: plan again."""

    operator_must_fix = True


class StopRequested(CertsyncError):
    """The process was asked to stop (SIGTERM): nothing new starts."""


class ApiError(CertsyncError):
    """An API answered in a way certsync cannot go on with for this request."""

    def __init__(self, api: str, message: str, *, status: int | None = None) -> None:
        super().__init__(f"{api}: {message}")
        self.api = api
        self.status = status


class AuthError(ApiError):
    """401: the token is missing, wrong or expired."""

    operator_must_fix = True


class ForbiddenError(AuthError):
    """403: the token lacks a scope (or the caller's IP is not allowed)."""

    def __init__(self, api: str, message: str, *, scope: str | None) -> None:
        super().__init__(api, message, status=403)
        self.scope = scope


class NotFoundError(ApiError):
    """404: the resource does not exist (a deleted template, an unknown user)."""


class EndpointNotFoundError(ApiError):
    """404 on a list endpoint that always exists: the base URL is wrong, not the data."""

    operator_must_fix = True


class RejectedError(ApiError):
    """422 or another 4xx: the server refused the request as sent; retrying will not help."""


class RetriableError(ApiError):
    """A network error, 429 or 5xx that outlived every retry."""


class OutcomeUnknownError(RetriableError):
    """A write whose outcome is unknown: the request may or may not have taken effect."""


class ResponseFormatError(ApiError):
    """The body is not the documented JSON (HTML, truncated, wrong envelope, too large)."""
