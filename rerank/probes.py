"""Probe inputs for a function the query asks for: what candidates are run on to compare behaviour.

Each parameter's type comes from its annotation, else from how the docstring describes it ("a
list of positive integers x", "two strings s and c"), else from its name; a parameter whose type
stays unknown mixes type families, likeliest first. Values are edge cases (empty, zero, one,
negative) and seeded random ones varied enough to tell apart programs that agree on easy inputs
(multi-digit numbers, duplicates, punctuation, mixed case). Every input is a Python literal
written as source text, so the sandbox only ever evaluates ``name(literal, ...)``; examples with
known outputs are not needed.
"""

from __future__ import annotations

import ast
import hashlib
import random
import re
import string
from typing import Any, Callable

from .python_checks import query_signature
from .safe_parse import literal_value

WORDS = ["hello", "world", "Hi", "my", "name", "is", "John", "apple", "banana", "racecar", "abc", "xyz",
         "Python", "a", "I", "code", "level", "noon", "Test", "data", "AEIOU", "sky", "b2", "42"]
SEPARATORS = [" ", " ", " ", ", ", ",", "  ", "-", "_"]

_BY_NAME = [
    (re.compile(r"^(strings|words|names|lst_?str)$"), "list[str]"),
    (re.compile(r"^(s|st|str|string|text|txt|word|sentence|name|c|char|date|message|substring|prefix|suffix|"
                r"brackets|a_?str|b_?str|s\d|planet\d?)\d*$"), "str"),
    (re.compile(r"^(l|lst|arr|array|nums|numbers|xs|items|values|list\d*|grid|l\d|operations|operand|grades)$"), "list"),
    (re.compile(r"^(d|dict|dct|mapping)$"), "dict"),
    (re.compile(r"^(n|m|k|x|y|z|a|b|num|number|i|j|base|p|capacity|decimal|value|t|threshold)\d*$"), "int"),
]
_TYPE_WORDS = [
    ("list[str]", r"(?:list|array|sequence|tuple)s? of (?:\w+ )?(?:strings|words|names)"),
    ("list[float]", r"(?:list|array|sequence|tuple)s? of (?:\w+ )?(?:floats|floating[- ]point numbers|real numbers|decimals)"),
    ("list", r"(?:list|array|sequence|vector|tuple)s?(?: of (?:[\w-]+ ){0,2}(?:integers|numbers|ints|digits|lists))?"),
    ("dict", r"(?:dictionary|dictionaries|dict|mapping)"),
    ("str", r"(?:string|text|word|sentence|character|char)s?"),
    ("float", r"(?:float|floating[- ]point number|real number|decimal number)s?"),
    ("int", r"(?:integer|int|whole number|natural number|number|digit)s?"),
    ("bool", r"(?:boolean|bool)s?"),
]
_ADJECTIVES = r"(?:(?:a|an|the|given|two|three|non-?empty|positive|negative|non-?negative|nonnegative|" \
              r"lowercase|uppercase|binary|sorted|whole|some|of)\s+)*"
DEFAULT_ORDER = ["int", "str", "list", "float", "list[str]"]


def _small_int(rng: random.Random) -> int:
    return rng.choice([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, rng.randint(0, 20)])


def _any_int(rng: random.Random) -> int:
    kind = rng.random()
    if kind < 0.45:
        return _small_int(rng)
    if kind < 0.75:
        return rng.randint(11, 200)
    if kind < 0.88:
        return rng.randint(201, 9999)
    return -rng.randint(1, 30)


def _float(rng: random.Random) -> float:
    return rng.choice([0.0, 1.0, 0.5, float(_small_int(rng)), round(rng.uniform(-10, 10), 2), round(rng.uniform(0, 100), 1)])


def _word_text(rng: random.Random) -> str:
    words = rng.sample(WORDS, rng.randint(1, 5))
    sep = rng.choice(SEPARATORS)
    text = sep.join(words)
    if rng.random() < 0.2:
        text += rng.choice([".", "!", "?"])
    return text


def _char_text(rng: random.Random) -> str:
    alphabet = rng.choice([string.ascii_lowercase[:6], "abcdeABCDE", "aeiouxyz", "0123456789", "()[]", "<>",
                           "abcABC123 ,.!"])
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12)))


def _str(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.08:
        return rng.choice(["", "a", "A", " "])
    return _word_text(rng) if kind < 0.6 else _char_text(rng)


def _int_list(rng: random.Random) -> list[int]:
    size = rng.choice([0, 1, 2, 3, 4, 5, 6, 8])
    pick = _small_int if rng.random() < 0.5 else _any_int
    values = [pick(rng) for _ in range(size)]
    if values and rng.random() < 0.3:
        values.append(rng.choice(values))
    if rng.random() < 0.2:
        values.sort()
    return values


def _float_list(rng: random.Random) -> list[float]:
    return [_float(rng) for _ in range(rng.choice([0, 1, 2, 3, 4, 6]))]


def _str_list(rng: random.Random) -> list[str]:
    size = rng.choice([0, 1, 2, 3, 4, 5])
    values = [rng.choice(WORDS) if rng.random() < 0.7 else _char_text(rng) for _ in range(size)]
    if values and rng.random() < 0.3:
        values.append(rng.choice(values))
    return values


def _dict(rng: random.Random) -> dict[str, Any]:
    keys = rng.sample(WORDS, rng.randint(0, 4))
    return {k: (_small_int(rng) if rng.random() < 0.6 else rng.choice(WORDS)) for k in keys}


FAMILIES: dict[str, Callable[[random.Random], Any]] = {
    "int": _any_int, "str": _str, "list": _int_list, "float": _float, "list[str]": _str_list,
    "list[float]": _float_list, "bool": lambda rng: rng.random() < 0.5, "dict": _dict,
}
_KINDS = {"int": int, "str": str, "list": list, "float": float, "list[str]": list, "list[float]": list,
          "bool": bool, "dict": dict}


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


def _described_family(name: str, query: str) -> str | None:
    """The type the docstring gives ``name``: "string s", "list of integers arr", "strings s and c",
    "n is a positive integer", "arr: a list"; the earliest description wins."""
    word = re.escape(name)
    found = []
    for family, noun in _TYPE_WORDS:
        before = rf"\b{noun}\s+(?:`?\w+`?\s*(?:,|and)\s*)*`?{word}`?(?![\w(])"
        after = rf"(?<![\w.]){word}`?\s*(?:is|are|:|\()\s*{_ADJECTIVES}{noun}\b"
        for rank, pattern, flags in ((0, before, re.I), (1, after, 0)):
            match = re.search(pattern, query, flags)
            if match:
                found.append((rank, match.start(), family))
    return min(found)[2] if found else None


def _family_order(param: ast.arg, query: str) -> tuple[list[str], bool]:
    """Type families to try for a parameter, likeliest first, and whether the first is certain."""
    fixed = _annotated_family(param.annotation) or _described_family(param.arg, query)
    if fixed:
        return [fixed], True
    order = [family for pattern, family in _BY_NAME if pattern.match(param.arg.lower())]
    return list(dict.fromkeys(order + DEFAULT_ORDER)), False


def _literals(text: str, limit: int = 24) -> list[Any]:
    """Literal values written in the text (numbers, quoted strings, bracketed lists)."""
    found: list[Any] = []
    text = text.replace('"""', " ").replace("'''", " ")
    for match in re.finditer(r"\[[^\[\]\n]{0,80}\]|'[^'\n]{0,40}'|\"[^\"\n]{0,40}\"|-?\b\d+(?:\.\d+)?\b", text):
        ok, value = literal_value(match.group())
        if not ok:
            continue
        if value not in found:
            found.append(value)
        if len(found) >= limit:
            break
    return found


def probe_calls(query: str, entry_point: str, *, count: int = 24) -> list[str]:
    """Up to ``count`` call expressions ``entry_point(...)`` of literal arguments, deterministic per query.

    A parameter of known type gets values of that type; an unknown one mixes type families, its
    likeliest first, so that some calls fit whatever it takes (calls that fit nothing are
    recognised later: most candidates raise on them). Literals the query mentions are mixed in.
    """
    args = query_signature(query, entry_point)
    if args is None:
        return []
    params = [a for a in args.posonlyargs + args.args if a.arg not in ("self", "cls")]
    required = params[: len(params) - len(args.defaults)] if args.defaults else params
    if not required:
        return [f"{entry_point}()"]
    mentioned = _literals(query)
    orders = [_family_order(p, query) for p in required]
    rng = random.Random(hashlib.sha256(f"{entry_point}\n{query}".encode()).digest())
    weights = [0.5, 0.25, 0.12, 0.08, 0.05]
    calls: list[str] = []
    for _ in range(count * 6):
        shared = rng.choices(range(len(weights)), weights)[0]
        values = []
        for order, certain in orders:
            rank = 0 if certain else shared if rng.random() < 0.6 else rng.choices(range(len(weights)), weights)[0]
            family = order[min(rank, len(order) - 1)]
            same_kind = [v for v in mentioned if type(v) is _KINDS[family]]
            values.append(rng.choice(same_kind) if same_kind and rng.random() < 0.2 else FAMILIES[family](rng))
        call = f"{entry_point}({', '.join(repr(v) for v in values)})"
        if call not in calls:
            calls.append(call)
        if len(calls) >= count:
            break
    return calls
