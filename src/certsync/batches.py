"""Cutting a sequence into batches: write requests of `chunk_size` users, `IN (...)`
clauses of a few hundred keys. Pure, so the plan and the store can share it."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")


def batches(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    if size < 1:
        raise ValueError("a batch holds at least one item")
    for start in range(0, len(items), size):
        yield items[start : start + size]
