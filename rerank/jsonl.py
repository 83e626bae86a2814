"""JSON Lines input and output that survive bad lines: each line is parsed or reported, never lost."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, BinaryIO, Iterator

MAX_LINE_BYTES = 16 * 1024 * 1024
"""Longest input line read; a longer one becomes an error line and the run goes on."""

MAX_NESTING = 64
"""Deepest JSON nesting accepted."""


@dataclass(frozen=True)
class Line:
    """One input line: its 1-based number and either the parsed object or why it is unusable."""

    number: int
    value: dict[str, Any] | None
    error: str | None = None

    @property
    def id(self) -> Any:
        """The line's ``id`` (or ``custom_id``) if it has one, else None."""
        if self.value is None:
            return None
        return self.value.get("id", self.value.get("custom_id"))


_NESTING_TOKENS = re.compile(r'"(?:\\.|[^"\\])*"|[\[\]{}]')


def json_depth(text: str) -> int:
    """How deep the brackets of a JSON text nest (strings skipped), without parsing it."""
    depth = deepest = 0
    for token in _NESTING_TOKENS.findall(text):
        if token in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif token in "]}":
            depth -= 1
    return deepest


def parse_line(raw: bytes, number: int) -> Line:
    """Decode one line into an object, or a Line whose ``error`` says what is wrong with it."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Line(number, None, f"line {number} is not UTF-8: {exc.reason} at byte {exc.start}")
    if json_depth(text) > MAX_NESTING:
        return Line(number, None, f"line {number} nests JSON deeper than {MAX_NESTING} levels")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return Line(number, None, f"line {number} is not valid JSON: {exc.msg} at column {exc.colno}")
    if not isinstance(value, dict):
        return Line(number, None, f"line {number} must be a JSON object, got {type(value).__name__}")
    return Line(number, value)


def read_lines(stream: BinaryIO, *, max_bytes: int = MAX_LINE_BYTES) -> Iterator[Line]:
    """Yield every line of ``stream``; a blank or over-long line is yielded with its error."""
    number = 0
    while True:
        raw = stream.readline(max_bytes + 1)
        if not raw:
            return
        number += 1
        if len(raw) > max_bytes and not raw.endswith(b"\n"):
            while True:
                rest = stream.readline(1 << 20)
                if not rest or rest.endswith(b"\n"):
                    break
            yield Line(number, None, f"line {number} is longer than {max_bytes:,} bytes")
            continue
        if raw.strip():
            yield parse_line(raw.strip(), number)
        else:
            yield Line(number, None, f"line {number} is empty")


def dumps(value: Any) -> str:
    """One compact JSON line (no newline), unicode kept as is."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
