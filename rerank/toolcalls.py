"""Function calls in an answer, however the model wrote them, and their canonical form.

Models call tools in many shapes: native ``tool_calls``; JSON (``{"name", "arguments"}``,
``{"function_name": {...}}``, ``{"tool_calls": [...]}``, possibly fenced or inside
``<tool_call>`` tags, possibly a list); or Python call syntax (``[f(a=1), g(b="x")]``).
:func:`parse_calls` reads them all into :class:`ParsedCall`; :func:`match_function` finds the
offered function a (possibly rewritten) name refers to; :func:`canonical_call` gives a hashable
form under which identical calls written differently compare equal.

Python syntax is read with ``ast`` and each argument with ``ast.literal_eval`` (plus bounded
arithmetic on number literals, ``p=1/6``); nothing is evaluated. A bare name as an argument value (``f(monitor=dbMonitor)``, common when the tool
wraps Java or JavaScript) is read as the string of its source text.
"""

from __future__ import annotations

import ast
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from .fenced_code import fenced_blocks
from .safe_parse import LITERAL_ERRORS, literal_value, parse_or_none
from .types import Candidate, ToolCall

MAX_CALL_TEXT = 100_000
"""Longest content searched for calls, in characters."""
MAX_DEPTH = 4
"""How many times a call may be wrapped in strings holding more JSON or Python (``["f(x=1)"]``)."""
MAX_NESTING = 64
"""Deepest bracket nesting read; deeper text is refused before any parser sees it."""
ARGUMENT_KEYS = ("arguments", "parameters", "params", "args", "input", "kwargs")
"""Keys under which JSON-shaped calls put their arguments."""
WRAPPER_NAMESPACES = ("functions", "default_api", "tools", "api")
"""Prefixes some models put before a function name (``functions.get_weather``)."""

_JSON_TOKENS = {"true": True, "false": False, "null": None}
_CALL_TAG = re.compile(r"<(tool_call|function_call)>(.*?)(?:</\1>|$)", re.DOTALL)
_CODE_TAGS = frozenset({"json", "python", "py", "javascript", "js", "java", "text", "plaintext", "tool_call", "xml"})
_SCAN_BUDGET = 400_000
_CALL_START = re.compile(r"[\[{]|(?<![\w.])[A-Za-z_][\w.]*\(")
_BRACKET_CHARS = re.compile(r"[()\[\]{}\"']")
_STRING_AT = {'"': re.compile(r'"(?:\\.|[^"\\\n])*"'), "'": re.compile(r"'(?:\\.|[^'\\\n])*'")}
_CALL_KEYS = frozenset({"name", "function", "type", "id", "call_id", "index", *ARGUMENT_KEYS})


@dataclass(frozen=True)
class ParsedCall:
    """One function call found in an answer.

    ``arguments`` is a JSON-like dict (tuples become lists) or None when they could not be
    read; ``error`` then says why.
    """

    name: str
    arguments: dict[str, Any] | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the name and the arguments were both read."""
        return self.error is None and self.arguments is not None and bool(self.name)


def parse_calls(candidate: Candidate, *, tools: Sequence[Mapping[str, Any]] = ()) -> list[ParsedCall]:
    """Every function call in ``candidate``: its ``tool_calls`` if it has any, else those written in its content.

    See :func:`parse_text_calls` for what ``tools`` changes.
    """
    if candidate.tool_calls:
        return [_from_tool_call(call) for call in candidate.tool_calls]
    return parse_text_calls(candidate.content or "", tools=tools)


def parse_text_calls(text: str, *, tools: Sequence[Mapping[str, Any]] = ()) -> list[ParsedCall]:
    """The function calls written in ``text`` (JSON or Python call syntax); ``[]`` when there are none.

    When the text as a whole (or a fenced block of it) is a call or a list of calls, those are
    the calls. Otherwise calls are picked out of the prose: with ``tools``, only calls to offered
    functions count; without, calls whose arguments were read (or, failing any, the rest).
    """
    return _parse_text(text, 0, tools)


def match_function(name: str, tools: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The offered function (the ``"function"`` dict of a tool) that ``name`` calls, or None.

    Exact names first; then names equal once ``.``, ``-``, ``/`` and ``_`` are treated alike and
    case is ignored (providers rewrite ``math.gcd`` to ``math_gcd``); then without a wrapper
    namespace such as ``functions.`` or ``default_api.``.
    """
    functions = [f for f in (_function_of(t) for t in tools) if f is not None]
    candidates = [name]
    for namespace in WRAPPER_NAMESPACES:
        if name.startswith(namespace + "."):
            candidates.append(name[len(namespace) + 1 :])
    for wanted in candidates:
        for function in functions:
            if function["name"] == wanted:
                return function
        key = _name_key(wanted)
        for function in functions:
            if _name_key(function["name"]) == key:
                return function
    return None


CanonicalCall = tuple[str, "tuple[tuple[str, str], ...] | None"]
"""A call as :func:`canonical_call` gives it: ``(function name, ((argument, canonical JSON), ...) | None)``."""


def canonical_call(
    call: ParsedCall, tools: Sequence[Mapping[str, Any]] = (), *, drop_defaults: bool = True
) -> CanonicalCall:
    """A hashable form of ``call``: ``(function name, ((argument, canonical JSON), ...))``.

    The name is the offered function's when it resolves; arguments are sorted by name, numbers
    become floats (so ``3`` and ``3.0`` agree), tuples become lists, and with ``drop_defaults``
    an argument equal to its schema ``default`` is left out. Unreadable arguments give
    ``(name, None)``.
    """
    function = match_function(call.name, tools) if tools else None
    name: str = function["name"] if function else call.name
    if call.arguments is None:
        return (name, None)
    properties = _properties(function)
    items = []
    for key, value in call.arguments.items():
        text = canonical_json(value)
        spec = properties.get(key)
        if drop_defaults and isinstance(spec, Mapping) and "default" in spec and canonical_json(spec["default"]) == text:
            continue
        items.append((str(key), text))
    return (name, tuple(sorted(items)))


def canonical_calls(
    calls: Sequence[ParsedCall], tools: Sequence[Mapping[str, Any]] = (), *, drop_defaults: bool = True
) -> tuple[CanonicalCall, ...]:
    """The canonical forms of several calls as an order-free, hashable multiset (a sorted tuple)."""
    return tuple(sorted((canonical_call(c, tools, drop_defaults=drop_defaults) for c in calls), key=repr))


def canonical_json(value: Any) -> str:
    """Compact JSON with sorted keys and every number as a float: equal values give equal text."""
    return json.dumps(_canonical_value(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=repr)


def _canonical_value(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        number = float(value) if not isinstance(value, int) or abs(value) < 2**63 else value
        return number if not isinstance(number, float) or math.isfinite(number) else repr(number)
    if isinstance(value, Mapping):
        return {str(k): _canonical_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical_value(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((_canonical_value(v) for v in value), key=repr)
    return repr(value)


def _function_of(tool: Any) -> Mapping[str, Any] | None:
    if not isinstance(tool, Mapping):
        return None
    function = tool.get("function", tool)
    if isinstance(function, Mapping) and isinstance(function.get("name"), str):
        return function
    return None


def _properties(function: Mapping[str, Any] | None) -> Mapping[str, Any]:
    parameters = function.get("parameters") if function else None
    properties = parameters.get("properties") if isinstance(parameters, Mapping) else None
    return properties if isinstance(properties, Mapping) else {}


def _name_key(name: str) -> str:
    return re.sub(r"[.\-/_]", "_", name).lower()


def _from_tool_call(call: ToolCall) -> ParsedCall:
    text = call.arguments.strip()
    if not text:
        return ParsedCall(call.name, {})
    try:
        value = json.loads(text)
        if isinstance(value, str):
            value = json.loads(value)
    except (ValueError, RecursionError) as exc:
        return ParsedCall(call.name, None, f"arguments are not valid JSON: {_json_error(exc)}")
    if not isinstance(value, dict):
        return ParsedCall(call.name, None, f"arguments must be a JSON object, got {type(value).__name__}")
    return ParsedCall(call.name, _jsonish(value))


def _parse_text(text: str, depth: int, tools: Sequence[Mapping[str, Any]] = ()) -> list[ParsedCall]:
    if len(text) > MAX_CALL_TEXT:
        return [ParsedCall("", None, f"the content is {len(text):,} characters; calls are read from at most {MAX_CALL_TEXT:,}")]
    text = text.replace("\\_", "_").strip()
    if not text or depth > MAX_DEPTH:
        return []
    ends, nesting = _bracket_ends(text)
    if nesting > MAX_NESTING:
        return [ParsedCall("", None, f"brackets nest {nesting} levels deep; calls are read up to {MAX_NESTING} levels")]
    segments = [text] + [block.body for block in fenced_blocks(text)]
    for segment in segments:
        calls = _parse_segment(segment, depth)
        if calls is not None:
            return calls
    tagged = [_parse_segment(m.group(2).strip(), depth) for m in _CALL_TAG.finditer(text)]
    parsed = [calls for calls in tagged if calls is not None]
    if tagged and len(parsed) == len(tagged):
        return [call for calls in parsed for call in calls]  # explicit call markup: every call counts
    return _pick(_scan(text, depth, ends), tools)


def _pick(calls: list[ParsedCall], tools: Sequence[Mapping[str, Any]]) -> list[ParsedCall]:
    """Calls found in prose that count: those to offered functions, else those that were read."""
    if tools:
        return [call for call in calls if match_function(call.name, tools) is not None]
    return [call for call in calls if call.ok] or calls


def _parse_segment(segment: str, depth: int) -> list[ParsedCall] | None:
    """The calls ``segment`` holds when it is, as a whole, a JSON value or Python expressions; else None."""
    try:
        return _calls_from_value(json.loads(segment), depth)
    except (ValueError, RecursionError):
        pass
    tree = parse_or_none(segment)
    expressions = [s.value for s in tree.body if isinstance(s, ast.Expr)] if tree is not None else []
    if tree is None or not tree.body or len(expressions) != len(tree.body):
        return None
    calls: list[ParsedCall] = []
    for expression in expressions:
        found = _calls_from_node(expression, depth)
        if found is None:
            return None
        calls += found
    return calls


def _calls_from_node(node: ast.expr, depth: int) -> list[ParsedCall] | None:
    if isinstance(node, ast.Call):
        call = _call_from_ast(node)
        return None if call is None else [call]
    if isinstance(node, (ast.List, ast.Tuple)):
        pair = _name_and_arguments_node(node)
        if pair is not None:
            return [pair]
        calls: list[ParsedCall] = []
        for element in node.elts:
            found = _calls_from_node(element, depth)
            if found is None:
                return None
            calls += found
        return calls
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return _parse_text(node.value, depth + 1) or None
    if isinstance(node, ast.Dict):
        ok, value = literal_value(node)
        if not ok:
            return None
        try:
            return _calls_from_value(value, depth)
        except LITERAL_ERRORS:  # e.g. str() of an oversized integer key
            return None
    return None


def _name_and_arguments_node(node: ast.List | ast.Tuple) -> ParsedCall | None:
    """``("name", {...})`` or ``["name", {...}]``: a call written as a pair."""
    if len(node.elts) != 2:
        return None
    first, second = node.elts
    if not (isinstance(first, ast.Constant) and isinstance(first.value, str) and isinstance(second, ast.Dict)):
        return None
    ok, arguments = literal_value(second)
    if not ok:
        return ParsedCall(first.value, None, "arguments are not literal values")
    return ParsedCall(first.value, _jsonish(arguments))


def _call_from_ast(node: ast.Call) -> ParsedCall | None:
    name = _dotted_name(node.func)
    if name is None:
        return None
    if name == "print" and len(node.args) == 1 and not node.keywords and isinstance(node.args[0], ast.Call):
        return _call_from_ast(node.args[0])
    arguments: dict[str, Any] = {}
    if node.args:
        if len(node.args) == 1 and not node.keywords and isinstance(node.args[0], ast.Dict):
            ok, value = _literal(node.args[0])
            if ok and isinstance(value, dict):
                return ParsedCall(name, _jsonish(value))
        return ParsedCall(
            name, None, f"{len(node.args)} positional argument(s) cannot be matched to parameter names: write name=value"
        )
    for keyword in node.keywords:
        ok, value = _literal(keyword.value)
        if keyword.arg is None:
            if not (ok and isinstance(value, dict)):
                return ParsedCall(name, None, "**arguments must be a literal dict")
            arguments.update(value)
            continue
        if not ok:
            source = ast.unparse(keyword.value)
            return ParsedCall(name, None, f"argument {keyword.arg!r} is not a literal value: {source[:60]}")
        arguments[keyword.arg] = value
    return ParsedCall(name, _jsonish(arguments))


def _dotted_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted_name(node.value)
        return None if base is None else f"{base}.{node.attr}"
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and re.fullmatch(r"[\w.\-/]+", node.value):
        return node.value
    return None


def _literal(node: ast.expr) -> tuple[bool, Any]:
    ok, value = literal_value(node)
    if ok:
        return True, value
    number = _arithmetic(node)
    if number is not None:
        return True, number
    if isinstance(node, ast.Name):
        return True, _JSON_TOKENS.get(node.id, node.id)
    if isinstance(node, ast.Attribute) and _dotted_name(node) is not None:
        return True, _dotted_name(node)
    return False, None


_ARITHMETIC: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.FloorDiv: lambda a, b: a // b,
    ast.Mod: lambda a, b: a % b,
    ast.Pow: lambda a, b: a**b,
}


def _arithmetic(node: ast.expr, depth: int = 0) -> int | float | None:
    """The value of arithmetic on number literals (``1/6``, ``5000*(1+0.025/4)**4``), or None.

    Only numbers and + - * / // % ** (exponent at most 64 in size, operands below 1e12) take part.
    """
    if depth > 20:
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _arithmetic(node.operand, depth + 1)
        return None if value is None else (-value if isinstance(node.op, ast.USub) else value)
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
        left, right = _arithmetic(node.left, depth + 1), _arithmetic(node.right, depth + 1)
        if left is None or right is None or abs(left) > 1e12 or abs(right) > 1e12:
            return None
        if isinstance(node.op, ast.Pow) and abs(right) > 64:
            return None
        try:
            value = _ARITHMETIC[type(node.op)](left, right)
        except (ArithmeticError, ValueError):
            return None
        return value if type(value) in (int, float) else None
    return None


def _calls_from_value(value: Any, depth: int) -> list[ParsedCall] | None:
    """The calls a JSON (or Python literal) value spells, or None when it is not call-shaped."""
    if depth > MAX_DEPTH:
        return None
    if isinstance(value, (list, tuple)):
        if len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], dict):
            return [ParsedCall(value[0], _jsonish(value[1]))]
        calls: list[ParsedCall] = []
        for element in value:
            found = _calls_from_value(element, depth)
            if found is None:
                return None
            calls += found
        return calls
    if isinstance(value, str):
        return _parse_text(value, depth + 1) or None
    if not isinstance(value, dict) or not value:
        return None
    for key in ("tool_calls", "function_call", "tool_call", "calls"):
        if key in value and isinstance(value[key], (list, dict)):
            return _calls_from_value(value[key], depth)
    function = value.get("function")
    if isinstance(function, dict):
        return _calls_from_value(function, depth)
    name = value.get("name", function)
    if isinstance(name, str) and name:
        arguments_key = next((k for k in ARGUMENT_KEYS if k in value), None)
        if arguments_key is not None:
            return [_call_from_name_and_raw(name, value[arguments_key])]
        # {"name": "f", "a": 1, "b": 2}: the arguments written beside the name
        return [ParsedCall(name, _jsonish({k: v for k, v in value.items() if k not in _CALL_KEYS}))]
    if len(value) == 1:
        (only_key, raw), = value.items()
        if isinstance(raw, dict):
            return [ParsedCall(str(only_key), _jsonish(raw))]
        if isinstance(raw, str):
            decoded = _decode_json_object(raw)
            if decoded is not None:
                return [ParsedCall(str(only_key), decoded)]
    return None


def _call_from_name_and_raw(name: str, raw: Any) -> ParsedCall:
    if isinstance(raw, dict):
        return ParsedCall(name, _jsonish(raw))
    if isinstance(raw, str):
        if not raw.strip():
            return ParsedCall(name, {})
        decoded = _decode_json_object(raw)
        if decoded is not None:
            return ParsedCall(name, decoded)
        return ParsedCall(name, None, "arguments are a string that is not a JSON object")
    return ParsedCall(name, None, f"arguments must be an object, got {type(raw).__name__}")


def _decode_json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
        if isinstance(value, str):
            value = json.loads(value)
    except (ValueError, RecursionError):
        return None
    return _jsonish(value) if isinstance(value, dict) else None


def _scan(text: str, depth: int, ends: Mapping[int, int]) -> list[ParsedCall]:
    """Calls embedded anywhere in prose: JSON values and Python call expressions, in order of position.

    ``ends`` maps each opening bracket to the end of its balanced span. At most ``_SCAN_BUDGET``
    characters are parsed in all, so pathological text costs bounded time.
    """
    found: list[tuple[int, list[ParsedCall]]] = []
    consumed_until = 0
    budget = _SCAN_BUDGET
    for match in _CALL_START.finditer(text):
        start = match.start()
        if start < consumed_until:
            continue
        end = ends.get(start if text[start] in "[{" else match.end() - 1)
        if end is None or end - start > budget:
            continue
        budget -= end - start
        segment = text[start:end]
        calls = None
        if text[start] in "[{":
            try:
                value = json.loads(segment)
                calls = _calls_from_value(value, depth) or _named_arguments(text, start, value)
            except (ValueError, RecursionError):
                calls = _parse_segment(segment, depth)
        else:
            calls = _parse_segment(segment, depth)
        if calls:
            found.append((start, calls))
            consumed_until = end
    return [call for _, calls in found for call in calls]


def _bracket_ends(text: str) -> tuple[dict[int, int], int]:
    """For each opening bracket, the index just past its closing one; and the deepest nesting.

    Inside brackets, quoted strings (closed on the same line) are skipped; outside them quotes
    are prose (apostrophes) and ignored. A closing bracket that does not match resets the stack.
    """
    pairs = {"(": ")", "[": "]", "{": "}"}
    ends: dict[int, int] = {}
    stack: list[tuple[int, str]] = []
    deepest = 0
    position = 0
    # Once a quote finds no closing one on its line, no later quote of that kind on the line can
    # (escapes pair up the same way after it), so none is tried: each line is scanned once.
    unclosed_until = {'"': -1, "'": -1}
    while True:
        match = _BRACKET_CHARS.search(text, position)
        if match is None:
            break
        token, position = match.group(), match.end()
        if token in "\"'":
            string = None
            if stack and match.start() > unclosed_until[token]:
                string = _STRING_AT[token].match(text, match.start())
                if string is None:
                    line_end = text.find("\n", match.start())
                    unclosed_until[token] = len(text) if line_end < 0 else line_end
            if string is not None:
                position = string.end()
        elif token in pairs:
            stack.append((match.start(), pairs[token]))
            deepest = max(deepest, len(stack))
        elif stack and stack[-1][1] == token:
            ends[stack.pop()[0]] = position
        else:
            stack.clear()
    return ends, deepest


def _named_arguments(text: str, start: int, value: Any) -> list[ParsedCall] | None:
    """A JSON object of arguments right under a line holding only a function name."""
    if not isinstance(value, dict):
        return None
    line = text[:start].rstrip(" \t")
    if not line.endswith("\n"):
        return None
    previous = line[:-1].rsplit("\n", 1)[-1].strip().strip("`").strip()
    if re.fullmatch(r"[A-Za-z_][\w.\-]*", previous) and previous.lower() not in _CODE_TAGS:
        return [ParsedCall(previous, _jsonish(value))]
    return None


def _jsonish(value: Any) -> Any:
    if isinstance(value, dict):
        return {(k if isinstance(k, str) else str(k)): _jsonish(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonish(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return [_jsonish(v) for v in sorted(value, key=repr)]
    return value


def _json_error(exc: BaseException) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at line {exc.lineno}, column {exc.colno}"
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return str(exc)
