"""Every holder of many templates, read with `concurrency` requests in flight.

A template's first page says how many pages it has (`meta.last_page`), so its other
pages are asked for by number, side by side with every other template's pages:
one large template does not keep one request slot busy while the others sit idle.
A server whose pages do not give their numbers is read by following `next` links,
one page after another, as before.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import date, datetime

from certsync.clients.monotree import API, Holder, HolderPage, MonotreeClient
from certsync.errors import NotFoundError, ResponseFormatError
from certsync.models import Holding

# A task is (certificate, page); page 0 stands for "the rest, by following links".
_BY_LINKS = 0
Fetched = tuple[HolderPage | None, dict[int, Holding]]


@dataclass
class _Template:
    certificate_id: int
    pages: dict[int, dict[int, Holding]] = field(default_factory=dict)
    last_page: int = 1
    next_page: int = 2
    first: HolderPage | None = None
    missing: bool = False


def read_holders(
    monotree: MonotreeClient,
    template_ids: list[int],
    *,
    concurrency: int,
    now: datetime,
    abandon: threading.Event | None = None,
) -> tuple[dict[int, dict[int, Holding]], list[int]]:
    """Holdings of every template and the templates Monotree does not know (404).

    Any other failure is raised, never a partial result: no plan is made from a
    partial read. Once `abandon` is set no further page is asked for, and what
    comes back is incomplete: the caller has failed already and will not plan.
    """
    templates = {cert: _Template(cert) for cert in template_ids}
    days: dict[date, date] = {}  # shared by the workers: setdefault is atomic
    firsts = deque(template_ids)
    numbered: deque[int] = deque()  # templates with pages left to ask for by number
    by_links: deque[int] = deque()

    def next_task() -> tuple[int, int] | None:
        if abandon is not None and abandon.is_set():
            return None
        if firsts:
            return firsts.popleft(), 1
        if by_links:
            return by_links.popleft(), _BY_LINKS
        while numbered:
            t = templates[numbered[0]]
            if t.missing or t.next_page > t.last_page:
                numbered.popleft()
                continue
            t.next_page += 1
            return t.certificate_id, t.next_page - 1
        return None

    def fetch(cert: int, page: int) -> Fetched:
        if page == _BY_LINKS:
            first = templates[cert].first
            assert first is not None
            return None, holdings_of(monotree.holders_after(cert, first), cert, now, days)
        got = monotree.holder_page(cert, page)
        # Converted here, in the worker, while other requests wait on the network.
        return got, holdings_of(got.holders, cert, now, days)

    def take(cert: int, page: int, fetched: Fetched) -> None:
        t = templates[cert]
        got, holdings = fetched
        if t.missing:
            return
        if got is None:
            t.pages[2] = holdings
            return
        if page > 1 and got.current_page is not None and got.current_page != page:
            raise ResponseFormatError(
                API,
                f"asked for page {page} of certificate {cert}'s holders, "
                f"was sent page {got.current_page}",
            )
        t.pages[page] = holdings
        if page == 1:
            if not got.holders or not got.has_more:
                return
            if got.current_page == 1 and got.last_page is not None and got.last_page > 1:
                t.last_page = got.last_page
                numbered.append(cert)
            else:
                t.first = got
                by_links.append(cert)
        elif got.last_page is not None and got.last_page > t.last_page:
            # The list grew while it was being read: read the new pages too.
            t.last_page = got.last_page
            numbered.append(cert)

    if template_ids:
        in_flight: dict[Future[Fetched], tuple[int, int]] = {}
        with ThreadPoolExecutor(
            max_workers=max(1, concurrency), thread_name_prefix="holders"
        ) as pool:
            try:
                while True:
                    while len(in_flight) < concurrency and (task := next_task()) is not None:
                        in_flight[pool.submit(fetch, *task)] = task
                    if not in_flight:
                        break
                    done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                    for future in done:
                        cert, page = in_flight.pop(future)
                        try:
                            fetched = future.result()
                        except NotFoundError:
                            templates[cert].missing = True
                            continue
                        take(cert, page, fetched)
            except BaseException:
                for future in in_flight:
                    future.cancel()
                raise

    holdings: dict[int, dict[int, Holding]] = {}
    for cert, t in templates.items():
        if not t.missing:
            holdings[cert] = merge_holdings(t.pages[n] for n in sorted(t.pages))
    return holdings, sorted(cert for cert, t in templates.items() if t.missing)


def holdings_of(
    holders: Iterable[Holder],
    certificate_id: int,
    now: datetime,
    days: dict[date, date] | None = None,
) -> dict[int, Holding]:
    """Holders as the plan sees them; a user listed twice keeps the active, latest entry.
    `days` shares each date among holdings (`Holder.holding`)."""
    out: dict[int, Holding] = {}
    for holder in holders:
        h = holder.holding(certificate_id, now, days)
        seen = out.get(holder.user_id)
        if seen is None or _preferred(h, seen):
            out[holder.user_id] = h
    return out


def merge_holdings(parts: Iterable[dict[int, Holding]]) -> dict[int, Holding]:
    """Holdings read in parts (pages), merged by the rule of `holdings_of`."""
    out: dict[int, Holding] = {}
    for part in parts:
        both = out.keys() & part.keys()
        kept = {u: out[u] for u in both if not _preferred(part[u], out[u])}
        out.update(part)
        out.update(kept)
    return out


def _preferred(candidate: Holding, seen: Holding) -> bool:
    return (candidate.active, candidate.issued_on or date.min) > (
        seen.active,
        seen.issued_on or date.min,
    )
