"""Monotree's page envelope, read one page at a time by a small state object.

`{"data": [...], "links": {"next": ...}, "meta": {"current_page", "last_page"}}`:
follow `links.next`; without links, fall back to `meta.last_page`; stop on an
empty page; refuse to fetch the same page twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PER_PAGE = 50


class PaginationError(ValueError):
    """The envelope is malformed or the server sent the reader in a loop."""


@dataclass(frozen=True, slots=True)
class PageRequest:
    """Either a link the server gave (`url`) or a page number against the first URL."""

    url: str | None = None
    page: int | None = None


def _as_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def page_numbers(body: object) -> tuple[int | None, int | None]:
    """(meta.current_page, meta.last_page), each None when the envelope does not say."""
    meta = body.get("meta") if isinstance(body, dict) else None
    if not isinstance(meta, dict):
        return None, None
    return _as_int(meta.get("current_page")), _as_int(meta.get("last_page"))


@dataclass
class Paginator:
    """Decides the next page from the last body; remembers where it has been."""

    seen: set[str] = field(default_factory=set)
    pages: int = 0

    def start(self) -> PageRequest:
        self.seen.add("page=1")
        return PageRequest(page=1)

    def items(self, body: Any) -> list[Any]:
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise PaginationError("the response is not a page envelope with a 'data' list")
        self.pages += 1
        return list(body["data"])

    def next_request(self, body: object, current: PageRequest) -> PageRequest | None:
        """The page to read after `body`, or None when the list is complete."""
        if not isinstance(body, dict) or not body.get("data"):
            return None
        links = body.get("links")
        raw_meta = body.get("meta")
        meta: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
        nxt: PageRequest | None
        if isinstance(links, dict) and "next" in links:
            link = links["next"]
            if link is None or link == "":
                return None
            if not isinstance(link, str):
                raise PaginationError("links.next is neither a URL nor null")
            nxt, key = PageRequest(url=link), link
        else:
            current_page = _as_int(meta.get("current_page")) or current.page or self.pages
            last_page = _as_int(meta.get("last_page"))
            if last_page is None or current_page >= last_page:
                return None
            nxt, key = PageRequest(page=current_page + 1), f"page={current_page + 1}"
        if key in self.seen:
            raise PaginationError(f"the server sent the reader back to a page it read: {key}")
        self.seen.add(key)
        return nxt
