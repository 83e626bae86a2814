"""Probe inputs for a function the query asks for: what candidates are run on to compare behaviour.

Inputs come from the query's own signature (type hints, else parameter names) and the literals
its docstring mentions; examples with known outputs are not needed. Every input is a Python
literal written as source text, so the sandbox only ever evaluates ``name(literal, ...)``.
"""

from __future__ import annotations

import ast
import hashlib
import itertools
import random
import re
from typing import Any

from .code import query_signature

INTS = [0, 1, 2, 3, 5, 7, 10, 12, 15, -1, -4, 100]
FLOATS = [0.0, 1.0, 2.5, -1.5, 3.7, 10.0]
STRINGS = ["", "a", "abc", "Hello World", "racecar", "aBcD eF", "12345", "hello  world test", "xyzzy"]
LISTS = [[], [1], [1, 2, 3], [3, 1, 2], [5, -2, 0, 7, 7], [10, 20, 30, 40, 50], [2, 4, 6, 8], [-3, -1, -2]]
FLOAT_LISTS = [[], [1.0, 2.0, 3.0], [1.5, -0.5, 2.25], [2.0, 2.0], [10.0, 0.1, 5.5, 3.3]]
STRING_LISTS = [[], ["a"], ["abc", "bcd", "cde"], ["hello", "world"], ["x", "yy", "zzz", "yy"]]
DICTS = [{}, {"a": 1, "b": 2}, {"A": "x", "B": "y"}, {"key": "value", "Key": "v2"}]

_BY_NAME = [
    (re.compile(r"^(s|st|str|string|text|txt|word|sentence|name|c|char|a_?str|b_?str)\d*$"), STRINGS),
    (re.compile(r"^(l|lst|arr|array|nums|numbers|xs|items|values|list\d*|grid|l\d)$"), LISTS),
    (re.compile(r"^(strings|words|names)$"), STRING_LISTS),
    (re.compile(r"^(d|dict|dct|mapping)$"), DICTS),
]


def _values_for(annotation: ast.expr | None, name: str) -> list[Any]:
    text = ast.unparse(annotation).lower().replace("typing.", "") if annotation is not None else ""
    if text:
        if re.match(r"^(list|tuple|sequence|iterable)\[(str)\]", text):
            return STRING_LISTS
        if re.match(r"^(list|tuple|sequence|iterable)\[(float)\]", text):
            return FLOAT_LISTS
        if re.match(r"^(list|tuple|sequence|iterable)", text):
            return LISTS
        if text.startswith("dict"):
            return DICTS
        for kind, values in (("bool", [True, False]), ("float", FLOATS), ("int", INTS), ("str", STRINGS)):
            if text == kind:
                return values
    for pattern, values in _BY_NAME:
        if pattern.match(name.lower()):
            return values
    return INTS


def _literals(text: str, limit: int = 24) -> list[Any]:
    """Literal values written in the text (numbers, quoted strings, bracketed lists)."""
    found: list[Any] = []
    text = text.replace('"""', " ").replace("'''", " ")
    for match in re.finditer(r"\[[^\[\]\n]{0,80}\]|'[^'\n]{0,40}'|\"[^\"\n]{0,40}\"|-?\b\d+(?:\.\d+)?\b", text):
        try:
            value = ast.literal_eval(match.group())
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            continue
        if value not in found:
            found.append(value)
        if len(found) >= limit:
            break
    return found


def probe_calls(query: str, entry_point: str, *, count: int = 12) -> list[str]:
    """Up to ``count`` call expressions ``entry_point(...)`` of literal arguments, deterministic per query."""
    args = query_signature(query, entry_point)
    if args is None:
        return []
    params = [a for a in args.posonlyargs + args.args if a.arg not in ("self", "cls")]
    n_defaults = len(args.defaults)
    required = params[: len(params) - n_defaults] if n_defaults else params
    mentioned = _literals(query)
    pools = []
    for param in required:
        values = list(_values_for(param.annotation, param.arg))
        kind = type(values[0]) if values and not isinstance(values[0], list) else list
        values += [v for v in mentioned if type(v) is kind and v not in values]
        pools.append(values)
    rng = random.Random(hashlib.sha256(f"{entry_point}\n{query}".encode()).digest())
    if not pools:
        return [f"{entry_point}()"]
    combos = list(itertools.islice(itertools.product(*pools), 5000))
    rng.shuffle(combos)
    return [f"{entry_point}({', '.join(repr(v) for v in combo)})" for combo in combos[:count]]
