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


def keep_what_imports_built() -> None:
    """Move every object alive now (what the imports built: modules, classes, SQLAlchemy's
    tables, pydantic's validators) out of the collector's reach: it lives as long as the
    process, and a full collection walked it all again (one in a 1%-changed cycle at
    100,300 records: 0.04 of its 1.3 CPU s; in the daemon, one every few cycles). The
    receiver freezes the same way, after its start (`service/receiver.py`)."""
    gc.freeze()
