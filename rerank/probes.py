"""Probe inputs for a function the query asks for: what candidates are run on to compare behaviour.

Inputs come from the query's own signature (type hints, else parameter names) and the literals
its docstring mentions; examples with known outputs are not needed. Every input is a Python
literal written as source text, so the sandbox only ever evaluates ``name(literal, ...)``.
"""

from __future__ import annotations

import ast
import hashlib
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

FAMILIES: dict[str, list[Any]] = {
    "int": INTS, "str": STRINGS, "list": LISTS, "float": FLOATS, "list[str]": STRING_LISTS,
    "list[float]": FLOAT_LISTS, "bool": [True, False], "dict": DICTS,
}
DEFAULT_ORDER = ["int", "str", "list", "float", "list[str]"]

_BY_NAME = [
    (re.compile(r"^(s|st|str|string|text|txt|word|sentence|name|c|char|date|a_?str|b_?str)\d*$"), "str"),
    (re.compile(r"^(l|lst|arr|array|nums|numbers|xs|items|values|list\d*|grid|l\d)$"), "list"),
    (re.compile(r"^(strings|words|names)$"), "list[str]"),
    (re.compile(r"^(d|dict|dct|mapping)$"), "dict"),
    (re.compile(r"^(n|m|k|x|y|a|b|num|number|i|j|base|p)\d*$"), "int"),
]
_DOC_WORDS = [
    ("list[str]", re.compile(r"\b(list|array) of (strings|words)\b", re.I)),
    ("list", re.compile(r"\b(list|array|vector)s?\b", re.I)),
    ("str", re.compile(r"\b(string|text|word|sentence|character)s?\b", re.I)),
    ("float", re.compile(r"\b(float|decimal|real number)s?\b", re.I)),
    ("int", re.compile(r"\b(integer|int|number|digit)s?\b", re.I)),
    ("dict", re.compile(r"\b(dictionary|dict|mapping)\b", re.I)),
]


def _annotated_family(annotation: ast.expr | None) -> str | None:
    if annotation is None:
        return None
    text = ast.unparse(annotation).lower().replace("typing.", "")
    for pattern, family in (
        (r"^(list|tuple|sequence|iterable)\[(str)\]", "list[str]"),
        (r"^(list|tuple|sequence|iterable)\[(float)\]", "list[float]"),
        (r"^(list|tuple|sequence|iterable)", "list"),
        (r"^dict", "dict"),
    ):
        if re.match(pattern, text):
            return family
    return text if text in ("bool", "float", "int", "str") else None


def _family_order(param: ast.arg, query: str) -> list[str]:
    """Type families to try for an unannotated parameter, likeliest first: its name, then the
    types the docstring talks about, then the usual ones."""
    order = [family for pattern, family in _BY_NAME if pattern.match(param.arg.lower())]
    mentions = sorted(((len(rx.findall(query)), i, fam) for i, (fam, rx) in enumerate(_DOC_WORDS)), reverse=True)
    order += [fam for count, _, fam in mentions if count]
    order += DEFAULT_ORDER
    return list(dict.fromkeys(order))


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


def probe_calls(query: str, entry_point: str, *, count: int = 24) -> list[str]:
    """Up to ``count`` call expressions ``entry_point(...)`` of literal arguments, deterministic per query.

    An annotated parameter gets values of its type; an unannotated one mixes type families, its
    likeliest first, so that some calls fit whatever it takes (calls that fit nothing are
    recognised later: most candidates raise on them).
    """
    args = query_signature(query, entry_point)
    if args is None:
        return []
    params = [a for a in args.posonlyargs + args.args if a.arg not in ("self", "cls")]
    required = params[: len(params) - len(args.defaults)] if args.defaults else params
    if not required:
        return [f"{entry_point}()"]
    mentioned = _literals(query)
    orders = [[fixed] if (fixed := _annotated_family(p.annotation)) else _family_order(p, query) for p in required]
    rng = random.Random(hashlib.sha256(f"{entry_point}\n{query}".encode()).digest())
    weights = [0.45, 0.25, 0.12, 0.1, 0.08]
    calls: list[str] = []
    for _ in range(count * 4):
        shared = rng.choices(range(len(weights)), weights)[0]
        values = []
        for order in orders:
            rank = shared if rng.random() < 0.6 else rng.choices(range(len(weights)), weights)[0]
            family = FAMILIES[order[min(rank, len(order) - 1)]]
            kind = list if isinstance(family[0], list) else type(family[0])
            values.append(rng.choice(family + [v for v in mentioned if type(v) is kind]))
        call = f"{entry_point}({', '.join(repr(v) for v in values)})"
        if call not in calls:
            calls.append(call)
        if len(calls) >= count:
            break
    return calls
