"""Streaming the elements of a file holding one top-level JSON list, without holding the file.

`list_elements(handle)` yields `(index, value)` from 1; a syntax error ends the file with
ListSyntaxError, since a list has no next line to resync on.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any, TextIO

CHUNK_CHARS = 1 << 20  # read size; tests shrink it
_NON_SPACE = re.compile(r"\S")
_DECODER = json.JSONDecoder()


class ListSyntaxError(ValueError):
    def __init__(self, index: int, problem: str):
        super().__init__(problem)
        self.index, self.problem = index, problem


class ListReader:
    """Streams the elements of a top-level JSON list without holding the whole file."""

    def __init__(self, handle: TextIO):
        self.handle, self.buf, self.pos, self.eof = handle, "", 0, False
        self.lines_before = 0  # newlines in text already dropped from buf, for error positions

    def _fill(self, grow: bool = False) -> bool:
        # growing the read when a value spans many chunks keeps re-parsing it O(n), not O(n^2)
        chunk = self.handle.read(max(CHUNK_CHARS, len(self.buf) - self.pos) if grow else CHUNK_CHARS)
        if not chunk:
            self.eof = True
            return False
        self.lines_before += self.buf.count("\n", 0, self.pos)
        self.buf, self.pos = self.buf[self.pos:] + chunk, 0
        return True

    def next_char(self) -> str:
        """The next non-space character (not consumed), or "" at the end of the file."""
        while True:
            m = _NON_SPACE.search(self.buf, self.pos)
            if m:
                self.pos = m.start()
                return m.group()
            self.pos = len(self.buf)
            if not self._fill():
                return ""

    def value(self) -> Any:
        self.next_char()  # raw_decode does not skip leading whitespace
        while True:
            try:
                value, end = _DECODER.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as e:
                if self.eof or not self._might_be_cut(e) or not self._fill(grow=True):
                    raise
                continue
            # a number or literal ending exactly at the buffer end may continue in the next chunk
            if end == len(self.buf) and not self.eof and self._fill(grow=True):
                continue
            self.pos = end
            return value

    def _might_be_cut(self, e: json.JSONDecodeError) -> bool:
        return e.msg.startswith("Unterminated string") or e.pos + 64 >= len(self.buf)

    def error_line(self, e: json.JSONDecodeError) -> int:
        return self.lines_before + e.lineno


def list_elements(handle: TextIO) -> Iterator[tuple[int, Any]]:
    """(index from 1, value) of every element; ListSyntaxError at the first thing that is not JSON."""
    reader, index = ListReader(handle), 0
    reader.next_char()
    reader.pos += 1  # the opening "[", seen by the caller
    char = reader.next_char()
    if char == "]":
        return
    while True:
        index += 1
        try:
            yield index, reader.value()
        except json.JSONDecodeError as e:
            raise ListSyntaxError(index, f"{e.msg} at line {reader.error_line(e)}") from None
        char = reader.next_char()
        if char == "]":
            return
        if char != ",":
            found = repr(char) if char else "the end of the file"
            raise ListSyntaxError(index + 1, f"expected ',' or ']' after item {index}, found {found}")
        reader.pos += 1
