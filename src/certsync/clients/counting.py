"""Every request counted by API, method and status: read by the report, bench and metrics."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable


class RequestCounter:
    """Counts requests by API, method and status; thread-safe; read by report, bench and metrics."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str, str]] = Counter()
        self.retries: Counter[str] = Counter()
        self.observers: list[Callable[[str, str, str], None]] = []
        self.retry_observers: list[Callable[[str], None]] = []
        # (api, requests left in the rate-limit window, as the server last said)
        self.budget_observers: list[Callable[[str, float], None]] = []

    def record(self, api: str, method: str, status: int | str) -> None:
        key = (api, method, str(status))
        with self._lock:
            self._counts[key] += 1
        for observe in self.observers:
            observe(*key)

    def record_retry(self, api: str) -> None:
        with self._lock:
            self.retries[api] += 1
        for observe in self.retry_observers:
            observe(api)

    def record_budget(self, api: str, remaining: float) -> None:
        for observe in self.budget_observers:
            observe(api, remaining)

    def snapshot(self) -> dict[str, int]:
        """`{"monotree GET 200": 3, ...}`, sorted for stable output."""
        with self._lock:
            return {" ".join(k): v for k, v in sorted(self._counts.items())}
