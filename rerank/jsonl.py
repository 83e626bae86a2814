"""JSON Lines input and output that survive bad lines: each line is parsed or reported, never lost.

Reading is strict where Python's ``json`` is lenient: ``NaN``, ``Infinity``, a number too large
for a float (``1e999``), an integer of more than :data:`MAX_INT_DIGITS` digits and a lone
surrogate (``"\\ud800"``, which is no Unicode text) make the line an error line, whose ``id`` is
still reported when it can be read. Writing never fails on a value JSON cannot hold: such a
value is replaced by a string (``NaN`` -> ``"NaN"``, a lone surrogate -> its ``\\uXXXX`` text)
and the line says so in ``"replaced"``: one entry per replaced value, e.g.
``"$.id: NaN is not JSON; written as the string \\"NaN\\""``.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import stat
from dataclasses import dataclass
from typing import Any, BinaryIO, Iterator

import numpy as np

MAX_LINE_BYTES = 16 * 1024 * 1024
"""Longest input line read; a longer one becomes an error line and the run goes on."""

MAX_NESTING = 64
"""Deepest JSON nesting accepted."""

MAX_INT_DIGITS = 4300
"""Longest integer read, in digits (Python's own limit for turning text into an int)."""


@dataclass(frozen=True)
class Line:
    """One input line: its 1-based number and either the parsed object or why it is unusable.

    An unusable line whose object could still be read keeps its id (made JSON-safe) in
    ``error_id``, and ``id_note`` says when that id had to be replaced. ``empty`` marks a blank
    line (its ``error`` says so), which callers that skip blank lines test.
    """

    number: int
    value: dict[str, Any] | None
    error: str | None = None
    error_id: Any = None
    id_note: str | None = None
    empty: bool = False

    @property
    def id(self) -> Any:
        """The line's ``id`` (or ``custom_id``) if it has one, else None."""
        if self.value is None:
            return self.error_id
        return self.value.get("id", self.value.get("custom_id"))


@dataclass(frozen=True)
class NotJSON:
    """A value the input spelled that JSON (or Python) cannot hold: what it is, and its text."""

    text: str
    what: str


# --- reading ----------------------------------------------------------------------------------

_STRINGS = re.compile(r'"[^"]*"')
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")


def json_depth(text: str) -> int:
    """How deep the brackets of a JSON text nest (strings skipped), without parsing it.

    Linear in the text's length, whatever it holds: escapes are dropped first (``\\\\`` then
    ``\\"``, which pairs backslashes left to right as JSON does), then the strings, which then
    hold no quote.
    """
    bare = _STRINGS.sub("", text.replace("\\\\", "").replace('\\"', ""))
    brackets = np.frombuffer(_NOT_BRACKETS.sub("", bare).encode("ascii"), dtype=np.uint8)
    if not len(brackets):
        return 0
    steps = np.where((brackets == ord("[")) | (brackets == ord("{")), 1, -1)
    return max(0, int(np.cumsum(steps).max()))


def _int(text: str) -> int | NotJSON:
    digits = len(text) - text.startswith("-")
    if digits > MAX_INT_DIGITS:
        return NotJSON(text, f"an integer of {digits:,} digits (at most {MAX_INT_DIGITS:,} are read)")
    return int(text)


def _float(text: str) -> float | NotJSON:
    value = float(text)
    return value if math.isfinite(value) else NotJSON(text, f"a number too large for a float ({text[:40]})")


def _constant(name: str) -> NotJSON:
    return NotJSON(name, f"{name} (JSON has no NaN or Infinity: write null or a string)")


def loads(text: str | bytes) -> Any:
    """``json.loads``, except that what JSON cannot hold (NaN, Infinity, 1e999, an integer of more
    than MAX_INT_DIGITS digits) comes back as a :class:`NotJSON` in its place instead of a
    float or a ValueError; :func:`first_unsafe` finds them."""
    return json.loads(text, parse_int=_int, parse_float=_float, parse_constant=_constant)


def _lone_surrogate(text: str) -> str | None:
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return text[exc.start].encode("utf-8", "backslashreplace").decode("ascii")
    return None


def _path(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if re.fullmatch(r"[A-Za-z_]\w*", key) else f"{path}[{json.dumps(key)}]"


def first_unsafe(value: Any) -> tuple[str, str] | None:
    """The first value JSON text cannot carry, as ``(JSON path, what it is)``, or None.

    Finds :class:`NotJSON` values, non-finite floats and strings (or keys) with a lone
    surrogate. One pass, no recursion.
    """
    # Each item's place is kept as (parent's place, key); its path text is written only if found.
    stack: list[tuple[Any, Any]] = [(None, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, NotJSON):
            return _written(where), item.what
        if isinstance(item, float) and not math.isfinite(item):
            return _written(where), f"{item} (JSON has no NaN or Infinity)"
        if isinstance(item, str):
            surrogate = _lone_surrogate(item)
            if surrogate:
                return _written(where), f"a lone surrogate ({surrogate}), which is no Unicode text"
        elif isinstance(item, dict):
            for key in reversed(list(item)):
                surrogate = _lone_surrogate(key) if isinstance(key, str) else None
                if surrogate:
                    return (_written((where, key)),
                            f"a key with a lone surrogate ({surrogate}), which is no Unicode text")
                stack.append(((where, key), item[key]))
        elif isinstance(item, (list, tuple)):
            stack += [((where, i), v) for i, v in reversed(list(enumerate(item)))]
    return None


def _written(where: Any) -> str:
    """The JSON path of a place kept by :func:`first_unsafe` (nested ``(parent, key)`` pairs)."""
    keys = []
    while where is not None:
        where, key = where
        keys.append(key)
    path = "$"
    for key in reversed(keys):
        path = _path(path, key)
    return path


def json_safe(value: Any, path: str = "$") -> tuple[Any, list[str]]:
    """``value`` with everything JSON cannot hold replaced by a string, and a note per replacement.

    NaN and Infinity become ``"NaN"``, ``"Infinity"``, ``"-Infinity"``; a :class:`NotJSON`
    its input text; a lone surrogate its ``\\uXXXX`` text; any other non-JSON object its ``str``.
    """
    notes: list[str] = []
    return _safe(value, path, notes, 0), notes


def _safe(value: Any, path: str, notes: list[str], depth: int) -> Any:
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        text = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}[repr(value)]
        notes.append(f'{path}: {text} is not JSON; written as the string "{text}"')
        return text
    if isinstance(value, NotJSON):
        notes.append(f"{path}: {value.what}; written as a string of its text")
        return value.text
    if isinstance(value, str):
        if _lone_surrogate(value) is None:
            return value
        notes.append(f"{path}: a lone surrogate is no Unicode text; written as its \\uXXXX escape text")
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if depth > 2 * MAX_NESTING + 200:
        notes.append(f"{path}: nested too deeply to write; written as null")
        return None
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            safe_key = _safe(key if isinstance(key, str) else str(key), path, notes, depth + 1)
            out[safe_key] = _safe(item, _path(path, safe_key), notes, depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        return [_safe(item, _path(path, i), notes, depth + 1) for i, item in enumerate(value)]
    notes.append(f"{path}: a {type(value).__name__} is not JSON; written as its text")
    return str(value)


def parse_line(raw: bytes, number: int) -> Line:
    """Decode one line into an object, or a Line whose ``error`` says what is wrong with it."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Line(number, None, f"line {number} is not UTF-8: {exc.reason} at byte {exc.start}")
    # No more opening brackets than the limit (strings' included) cannot nest deeper: the exact scan
    # is only needed beyond that.
    if text.count("[") + text.count("{") > MAX_NESTING and json_depth(text) > MAX_NESTING:
        return Line(number, None, f"line {number} nests JSON deeper than {MAX_NESTING} levels")
    try:
        value = loads(text)
    except json.JSONDecodeError as exc:
        return Line(number, None, f"line {number} is not valid JSON: {exc.msg} at column {exc.colno}")
    except (ValueError, RecursionError) as exc:
        return Line(number, None, f"line {number} is not valid JSON: {exc}")
    if not isinstance(value, dict):
        return Line(number, None, f"line {number} must be a JSON object, got {type(value).__name__}")
    unsafe = first_unsafe(value)
    if unsafe is not None:
        where, what = unsafe
        raw_id = value.get("id", value.get("custom_id"))
        safe_id, notes = json_safe(raw_id, "the id")
        return Line(number, None, f"line {number} is not valid JSON text: {where} is {what}",
                    error_id=safe_id, id_note="; ".join(notes) or None)
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
            yield Line(number, None, f"line {number} is empty", empty=True)


# --- writing ----------------------------------------------------------------------------------


def dumps(value: Any) -> str:
    """One compact JSON line (no newline), unicode kept as is."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def encode_line(record: dict[str, Any]) -> bytes:
    """One output line as UTF-8 bytes, newline included, always valid JSON.

    What JSON cannot hold is replaced (see :func:`json_safe`) and listed under ``"replaced"``.
    """
    try:
        return (json.dumps(record, ensure_ascii=False, allow_nan=False, separators=(",", ":")) + "\n").encode("utf-8")
    except (ValueError, TypeError, UnicodeEncodeError, RecursionError):
        pass
    safe, notes = json_safe(record)
    safe["replaced"] = list(safe.get("replaced") or []) + notes
    return (json.dumps(safe, ensure_ascii=False, allow_nan=False, separators=(",", ":")) + "\n").encode("utf-8")


DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
"""Write errors that mean no room is left: a full disk, a quota, the largest file allowed."""


def write_error(path: str, exc: OSError) -> str:
    """What a failed write of OUTPUT means, for a person."""
    if exc.errno in DISK_FULL:
        return f"{path}: no space left ({exc.strerror or exc})"
    if isinstance(exc, BrokenPipeError):
        return f"{path}: the reader closed the pipe"
    return f"{path}: {exc.strerror or exc}"


def write_whole(target: BinaryIO, data: bytes) -> None:
    """Write ``data`` (whole lines) and flush; on a failure, cut a regular file back to where it was.

    So a full disk leaves only whole lines behind. Raises the OSError.
    """
    start = _position(target)
    view = memoryview(data)
    try:
        while view:
            count = target.write(view)
            view = view[count if count is not None else len(view):]
        target.flush()
    except OSError:
        if start is not None:
            try:
                os.ftruncate(target.fileno(), start)
            except OSError:
                pass
        raise


def _position(target: BinaryIO) -> int | None:
    try:
        if stat.S_ISREG(os.fstat(target.fileno()).st_mode):
            target.flush()
            return os.fstat(target.fileno()).st_size
    except (OSError, ValueError, AttributeError):
        pass
    return None


def same_file(stream: BinaryIO, path: str) -> bool:
    """True when ``path`` (``-``: stdout) is the regular file ``stream`` reads, under any name."""
    try:
        source = os.fstat(stream.fileno())
        target = os.fstat(1) if path == "-" else os.stat(path)
    except (OSError, ValueError, AttributeError):
        return False
    return (stat.S_ISREG(source.st_mode) and stat.S_ISREG(target.st_mode)
            and (source.st_dev, source.st_ino) == (target.st_dev, target.st_ino))
