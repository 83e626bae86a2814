"""The examples a query's docstring gives for its function: a literal call and the value it should return.

Everything here is static: the query is read with ``re`` and ``ast``, never executed. Running the
examples against a candidate is :mod:`rerank.validators.python`'s job.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

from .python_checks import MAX_CODE_CHARS, balanced_end, entry_point_of, query_signature, string_end
from .safe_parse import literal_value, parse_or_none


@dataclass(frozen=True)
class Example:
    """One example a query's docstring gives: a call expression and the value it should return.

    ``call`` is Python source that calls the query's function with literal arguments (possibly
    inside a safe wrapper such as ``round(f(x), 2)``); ``expected`` is the literal value the
    docstring states, ``None`` when it says the call returns None.
    """

    call: str
    expected: object | None


SAFE_WRAPPERS = frozenset(
    {"abs", "bool", "dict", "float", "frozenset", "int", "len", "list", "max", "min", "repr", "round",
     "set", "sorted", "str", "sum", "tuple"}
)
"""Builtins a doctest example may wrap around the call (``round(find_zero([1, 2]), 2)``)."""

_SAFE_NODES = (
    ast.Expression, ast.Call, ast.Name, ast.Load, ast.Constant, ast.List, ast.Tuple, ast.Set, ast.Dict,
    ast.UnaryOp, ast.USub, ast.UAdd, ast.Not, ast.keyword, ast.Subscript, ast.Slice, ast.BinOp,
    ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod,
)

_SEPARATOR = re.compile(
    r"[ \t]*(?:\n[ \t]*)?(?:#[ \t]*)?"
    r"(?:==>|=>|-->|->|➞|→|==|=(?![=>])|should\s+return|should\s+be|will\s+return|returns|"
    r"gives|evaluates\s+to|is\s+equal\s+to)"
    r"[ \t]*:?[ \t]*(?:\n[ \t]*)?"
)
_ASSIGNMENT_FORMS = (
    re.compile(
        r"\b[Ff]or\s+(?P<args>[A-Za-z_]\w*\s*=[^\n]*?)[ \t,]*(?:\n[ \t]*)?(?:the\s+)?(?:output|result)\s+"
        r"(?:should\s+be|will\s+be|is)\s*:?[ \t]*"
    ),
    re.compile(r"\bInput\s*:[ \t]*(?P<args>[^\n]+(?:\n(?![ \t]*Output)[^\n]+){0,8}?)[ \t]*\n[ \t]*Output\s*:[ \t]*"),
)
_OPERATOR_AFTER = set("+-*/%=<>&|^@([")
_MAX_MENTIONS = 200
_DOCTEST_PROMPT = re.compile(r"[ \t]*(?:[rRuU]?(?:\"\"\"|\'\'\')[ \t]*)?>>>[ \t]?")


def examples_for(query: str, entry_point: str | None = None) -> list[Example]:
    """The (call, expected value) examples a query's docstring gives for its function, in order.

    Reads doctests (``>>> f(1)`` then ``2``; ``>>> f(1) == 2``), inline forms (``f(1) == 2``,
    ``==>``, ``=>``, ``->``, ``➞``, ``=``, "should return", "returns", ``# =>``) and assignment
    forms ("For lst = [1, 2] the output should be 3"; "Input: n = 3 / Output: 4"). Arguments and
    expected values must be literals; anything that does not parse is skipped.
    ``entry_point`` defaults to the function the query defines.
    """
    entry = entry_point or entry_point_of(query)
    if not entry or not query:
        return []
    text = query[:MAX_CODE_CHARS]
    found: list[tuple[int, Example]] = []
    spans: list[tuple[int, int]] = []
    for start, end, example in _doctest_examples(text, entry):
        spans.append((start, end))
        if example is not None:
            found.append((start, example))
    found += _inline_examples(text, entry, spans)
    found += _assignment_examples(text, entry)
    out: list[Example] = []
    seen: set[tuple[str, str]] = set()
    for _, example in sorted(found, key=lambda item: item[0]):
        key = (example.call, repr(example.expected))
        if key not in seen:
            seen.add(key)
            out.append(example)
    return out


def _doctest_examples(text: str, entry: str) -> Iterator[tuple[int, int, Example | None]]:
    lines = text.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    i = 0
    while i < len(lines):
        prompt = _DOCTEST_PROMPT.match(lines[i])
        if prompt is None:
            i += 1
            continue
        source = [lines[i][prompt.end() :].strip()]
        j = i + 1
        while j < len(lines) and lines[j].lstrip().startswith("..."):
            source.append(lines[j].lstrip()[3:].rstrip())
            j += 1
        output = []
        while j < len(lines) and lines[j].strip() and not lines[j].lstrip().startswith(">>>"):
            line = lines[j].strip()
            closing = re.search(r"(\"\"\"|\'\'\')$", line)
            if closing:
                line = line[: closing.start()].strip()
                if line:
                    output.append(line)
                break
            output.append(line)
            j += 1
        source_end = offsets[i + len(source)]
        yield offsets[i], source_end, _doctest_example("\n".join(source), "\n".join(output), entry)
        i = j


def _doctest_example(source: str, output: str, entry: str) -> Example | None:
    tree = _parse_expression(source)
    if tree is None:
        return None
    expr = tree.body
    if isinstance(expr, ast.Compare) and len(expr.ops) == 1 and isinstance(expr.ops[0], ast.Eq):
        ok, expected = literal_value(expr.comparators[0])
        if ok and _is_example_call(expr.left, entry):
            return Example(ast.unparse(expr.left), expected)
        return None
    if not _is_example_call(expr, entry):
        return None
    if not output:
        direct = isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name) and expr.func.id == entry
        return Example(ast.unparse(expr), None) if direct else None
    ok, expected = _literal_text(output)
    return Example(ast.unparse(expr), expected) if ok else None


def _inline_examples(text: str, entry: str, skip: list[tuple[int, int]]) -> list[tuple[int, Example]]:
    found = []
    for count, match in enumerate(re.finditer(rf"(?<![\w.]){re.escape(entry)}\s*\(", text)):
        if count >= _MAX_MENTIONS:
            break
        start = match.start()
        if re.search(r"def\s+$", text[max(0, start - 12) : start]) or any(a <= start < b for a, b in skip):
            continue
        end = balanced_end(text, match.end() - 1)
        if end is None:
            continue
        tree = _parse_expression(text[start:end])
        if tree is None or not _is_example_call(tree.body, entry):
            continue
        separator = _SEPARATOR.match(text, end)
        if separator is None:
            continue
        ok, expected = _leading_literal(text[separator.end() : separator.end() + 2000])
        if ok:
            found.append((start, Example(ast.unparse(tree.body), expected)))
    return found


def _assignment_examples(text: str, entry: str) -> list[tuple[int, Example]]:
    signature = query_signature(text, entry)
    if signature is None:
        return []
    positional = signature.posonlyargs + signature.args
    names = [a.arg for a in positional]
    required = names[: len(names) - len(signature.defaults)]
    found = []
    for pattern in _ASSIGNMENT_FORMS:
        for match in pattern.finditer(text):
            call = _call_from_assignments(match.group("args").strip().rstrip(",;."), entry, names, required)
            if call is None:
                continue
            ok, expected = _leading_literal(text[match.end() : match.end() + 2000])
            if ok:
                found.append((match.start(), Example(call, expected)))
    return found


def _call_from_assignments(args: str, entry: str, names: list[str], required: list[str]) -> str | None:
    """``f(v1, v2)`` from "a = v1, b = v2" when those name the function's leading parameters."""
    tree = _parse_expression(f"_({args})")
    if tree is None or not isinstance(tree.body, ast.Call):
        return None
    call = tree.body
    if call.keywords and not call.args:
        given = {kw.arg: kw.value for kw in call.keywords}
        leading = names[: len(given)]
        if None in given or set(given) != set(leading) or len(leading) < len(required):
            return None
        values = [given[name] for name in leading]
    elif call.args and not call.keywords and len(required) <= len(call.args) <= len(names):
        values = list(call.args)
    else:
        return None
    if not all(literal_value(v)[0] for v in values):
        return None
    return ast.unparse(ast.Call(ast.Name(entry, ast.Load()), values, []))


def _parse_expression(source: str) -> ast.Expression | None:
    if len(source) > 20_000:
        return None
    return parse_or_none(source.strip(), mode="eval")


def _is_example_call(node: ast.AST, entry: str) -> bool:
    """A safe expression that calls ``entry`` with literal arguments (possibly inside safe wrappers)."""
    calls_entry = False
    for inner in ast.walk(node):
        if not isinstance(inner, _SAFE_NODES):
            return False
        if isinstance(inner, ast.Name) and inner.id != entry and inner.id not in SAFE_WRAPPERS:
            return False
        if isinstance(inner, ast.Call):
            if not isinstance(inner.func, ast.Name):
                return False
            if inner.func.id == entry:
                arguments = inner.args + [kw.value for kw in inner.keywords]
                if any(kw.arg is None for kw in inner.keywords) or not all(literal_value(a)[0] for a in arguments):
                    return False
                calls_entry = True
    return calls_entry


def _literal_text(source: str) -> tuple[bool, object]:
    """A Python literal, or a JSON value (``true``, ``null``) as docstrings sometimes write them."""
    source = source.strip()
    if not source or len(source) > 20_000:
        return False, None
    ok, value = literal_value(source)
    if ok:
        return True, value
    try:
        return True, json.loads(source)
    except (ValueError, RecursionError):
        return False, None


def _leading_literal(text: str) -> tuple[bool, object]:
    """The first literal that starts ``text`` (ending at a bracket or a space), unless an operator follows it."""
    ends: list[int] = []
    depth, i = 0, 0
    while i < len(text):
        ch = text[i]
        if ch in "\"'":
            j = string_end(text, i, len(text))
            if j is None:
                break
            i = j
            if depth == 0:
                ends.append(i)
            continue
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth < 0:
                break
            if depth == 0:
                ends.append(i + 1)
        elif depth == 0 and (ch.isspace() or ch in ",;#"):
            ends.append(i)
            if ch in "\n#":
                break
        i += 1
    else:
        ends.append(len(text))
    for end in sorted(set(ends))[:8]:
        head = text[:end].strip()
        for source in (head.rstrip(".,;:"), head):
            ok, value = _literal_text(source)
            if ok:
                after = text[end:].lstrip(" \t")
                if after[:1] in _OPERATOR_AFTER:
                    return False, None
                return True, value
    return False, None
