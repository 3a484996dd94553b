"""Streams the items of a JSON object's `data` array out of a body that arrives in chunks.

The envelope is checked as strictly as `json.loads` would: one object, a `data`
key holding an array, nothing after the closing brace. Each item is decoded by
the standard library's C scanner as soon as its last byte has arrived, so memory
holds one item and one chunk, never the whole body.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

_WHITESPACE = re.compile(r"[ \t\n\r]*")
_COMPACT_AT = 1 << 20


class _Buffer:
    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self.text = ""
        self.pos = 0
        self.eof = False

    def more(self) -> bool:
        """Append the next chunk; False at the end of the body."""
        if self.eof:
            return False
        chunk = next(self._chunks, None)
        if chunk is None:
            self.eof = True
            tail = self._utf8.decode(b"", final=True)
            self.text += tail
            return bool(tail)
        if self.pos > _COMPACT_AT:
            self.text, self.pos = self.text[self.pos :], 0
        self.text += self._utf8.decode(chunk)
        return True

    def peek(self) -> str:
        """The next character after whitespace, or '' at the end."""
        while True:
            end = _WHITESPACE.match(self.text, self.pos)
            self.pos = end.end() if end else self.pos
            if self.pos < len(self.text):
                return self.text[self.pos]
            if not self.more():
                return ""

    def expect(self, char: str) -> None:
        found = self.peek()
        if found != char:
            raise ValueError(f"expected {char!r} at byte {self.pos}, found {found or 'the end'!r}")
        self.pos += 1


def _value(buffer: _Buffer, decoder: json.JSONDecoder) -> Any:
    """One complete JSON value; asks for more chunks until it is whole."""
    buffer.peek()
    while True:
        try:
            value, end = decoder.raw_decode(buffer.text, buffer.pos)
        except json.JSONDecodeError:
            if buffer.more():
                continue
            raise
        # A number that ends where the buffer ends may go on in the next chunk.
        if end == len(buffer.text) and buffer.more():
            continue
        buffer.pos = end
        return value


def iter_data_items(chunks: Iterable[bytes]) -> Iterator[Any]:
    """Yield each item of the top-level object's `data` array; ValueError on anything else."""
    buffer = _Buffer(chunks)
    decoder = json.JSONDecoder()
    buffer.expect("{")
    seen_data = False
    if buffer.peek() == "}":
        buffer.pos += 1
    else:
        while True:
            key = _value(buffer, decoder)
            if not isinstance(key, str):
                raise ValueError("an object key that is not a string")
            buffer.expect(":")
            if key == "data":
                if seen_data:
                    raise ValueError("two 'data' keys")
                seen_data = True
                buffer.expect("[")
                if buffer.peek() == "]":
                    buffer.pos += 1
                else:
                    while True:
                        yield _value(buffer, decoder)
                        if buffer.peek() == ",":
                            buffer.pos += 1
                            continue
                        buffer.expect("]")
                        break
            else:
                _value(buffer, decoder)
            if buffer.peek() == ",":
                buffer.pos += 1
                continue
            buffer.expect("}")
            break
    if buffer.peek() != "":
        raise ValueError(f"trailing data after the JSON object at byte {buffer.pos}")
    if not seen_data:
        raise ValueError("no 'data' list in the JSON object")
