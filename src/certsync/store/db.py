"""The one place where a database error becomes certsync's own `StoreError`.

Nothing outside `store/` sees SQLAlchemy: callers catch `StoreError` (exit 2),
whose message names what failed but never the URL, which may hold a password.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import SQLAlchemyError

from certsync.errors import StoreError


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Run the block; a database error leaves it as `StoreError("the store <what>: ...")`."""
    try:
        yield
    except SQLAlchemyError as exc:
        detail = getattr(exc, "orig", None) or exc
        first = str(detail).strip().splitlines()[0] if str(detail).strip() else type(exc).__name__
        raise StoreError(f"the store {what}: {first}") from None
