"""How the C allocator gives memory back: once per process, before any work."""

from __future__ import annotations

import ctypes
import os
import sys

# glibc's mallopt parameters: the size from which a block gets a mapping of its own,
# and how many arenas threads may spread their blocks over.
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
_THRESHOLD = 128 * 1024
_ARENAS = 2


def tune_allocator() -> None:
    """Give each freed large block (128 KiB or more) straight back to the system.

    glibc raises this threshold as it sees large blocks freed (up to 32 MiB), and then
    keeps such blocks in its heap: a cycle's passing buffers (the pull's segments, the
    snapshot's text, a page of rows) stayed in the process's memory long after use.
    Fixed, each is mapped on its own and unmapped when freed: 10 MB less at the peak
    of a cycle at 100,000 records.

    And two arenas for all threads: glibc gives each thread that allocates an arena of
    its own (up to 8 a core), where the blocks of the reads, the decode and the writes
    stay apart, each arena holding on to its own free space. Python runs one thread at
    a time, so more arenas buy little parallel work (C code that lets go of the GIL,
    SQLite or zlib, keeps a second one), and cost 4 MiB at the peak of a first full
    cycle at 100,000 records (145-146 MiB; 141-142 with one or two arenas). Elsewhere
    (musl, macOS, Windows) there is nothing to tune.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt(_M_MMAP_THRESHOLD, _THRESHOLD)
    if "MALLOC_ARENA_MAX" not in os.environ:  # an operator's own choice stands
        mallopt(_M_ARENA_MAX, _ARENAS)
