"""Building large values without the cyclic collector walking them as they grow."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused() -> Iterator[None]:
    """Hundreds of thousands of new objects, none in a reference cycle (records, rows,
    holdings): the collector would walk them all again and again as they are made (it
    doubled the CPU of decoding a pull), for nothing to collect."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
