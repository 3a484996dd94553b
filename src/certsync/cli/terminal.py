"""A progress line on a terminal that log lines never overwrite.

Log lines go through the same object as the progress: the progress is erased
before a log line is written and drawn again below it, so neither cuts into
the other. Off a terminal there is no progress line at all.
"""

from __future__ import annotations

import threading
from typing import TextIO

_ERASE = "\r\033[K"


class StatusLine:
    """A file-like stream (for the logger) with one transient line at its bottom."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._text = ""
        # Whether the cursor sits on the drawn progress line: `print` writes a
        # message and its newline in two calls, and only the progress may be erased.
        self._drawn = False

    def isatty(self) -> bool:
        return self._stream.isatty()

    def show(self, text: str) -> None:
        with self._lock:
            self._text = text
            self._stream.write(_ERASE + text)
            self._stream.flush()
            self._drawn = True

    def clear(self) -> None:
        with self._lock:
            if self._drawn:
                self._stream.write(_ERASE)
                self._stream.flush()
            self._text, self._drawn = "", False

    def write(self, text: str) -> int:
        with self._lock:
            if self._drawn:
                self._stream.write(_ERASE)
                self._drawn = False
            self._stream.write(text)
            if self._text and text.endswith("\n"):
                self._stream.write(self._text)
                self._drawn = True
            return len(text)

    def flush(self) -> None:
        with self._lock:
            self._stream.flush()
