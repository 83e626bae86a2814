"""Code inside answers: fenced blocks, the Python program an answer holds, the function a query asks for.

Everything here is static: text is parsed with ``re`` and ``ast``, never executed.
"""

from __future__ import annotations

import ast
import re
import textwrap
from dataclasses import dataclass

MAX_CODE_CHARS = 200_000
"""Longest code (or query) analysed; longer text is refused as too large to be an answer's program."""

PYTHON_TAGS = frozenset({"python", "py", "python3", "py3", "ipython", "pycon"})

_FENCE = re.compile(r"(`{3,}|~{3,})(?:[ \t]*([\w+#.-]*)[ \t]*\n)?(.*?)(?:\1|\Z)", re.S)


@dataclass(frozen=True)
class Block:
    """One fenced code block: its language tag (lower case, may be empty) and its dedented body."""

    lang: str
    body: str


def fenced_blocks(text: str) -> list[Block]:
    """The fenced code blocks of ``text`` in order (```lang ... ``` or ~~~); an unclosed fence runs to the end."""
    return [
        Block((m.group(2) or "").lower(), textwrap.dedent(m.group(3)).strip("\n"))
        for m in _FENCE.finditer(text)
        if m.group(3).strip()
    ]


def extract_code(text: str) -> str:
    """The Python program in an answer: its ```python blocks joined, else its untagged blocks, else the bare text.

    An answer whose only fenced blocks are in another language holds no Python: ``""``.
    """
    blocks = fenced_blocks(text)
    if not blocks:
        return textwrap.dedent(text).strip("\n") if text.strip() else ""
    for wanted in (lambda lang: lang in PYTHON_TAGS, lambda lang: lang == ""):
        chosen = [b.body for b in blocks if wanted(b.lang)]
        if chosen:
            return "\n\n".join(chosen)
    return ""


def parse_python(code: str) -> tuple[ast.Module | None, str | None]:
    """Parse (and compile, without running) ``code``: ``(tree, None)`` or ``(None, what is wrong)``."""
    if len(code) > MAX_CODE_CHARS:
        return None, f"the code is {len(code):,} characters; at most {MAX_CODE_CHARS:,} are analysed"
    try:
        tree = ast.parse(code)
        compile(tree, "<candidate>", "exec", dont_inherit=True)
    except SyntaxError as exc:
        where = f"line {exc.lineno}" if exc.lineno else "somewhere"
        return None, f"the code does not parse: {exc.msg} at {where}"
    except (RecursionError, MemoryError):
        return None, "the code is nested too deeply to parse"
    except ValueError as exc:
        return None, f"the code does not parse: {exc}"
    return tree, None


def entry_point_of(query: str) -> str | None:
    """The function a query asks for: the last ``def`` in it (preferring one whose body is only a
    docstring, as in a HumanEval prompt), else a name the prose gives ("a function named `f`")."""
    if not query or len(query) > MAX_CODE_CHARS:
        return None
    try:
        tree = ast.parse(textwrap.dedent(query))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        tree = None
    if tree is not None:
        functions = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        stubs = [f for f in functions if _is_stub(f)]
        if stubs or functions:
            return (stubs or functions)[-1].name
    defs = re.findall(r"^[ \t]*(?:async[ \t]+)?def[ \t]+([A-Za-z_]\w*)[ \t]*\(", query, re.M)
    if defs:
        return defs[-1]
    for pattern in _NAMED_FUNCTION:
        match = pattern.search(query)
        if match:
            return match.group(1)
    return None


_NAMED_FUNCTION = (
    re.compile(r"\b(?:function|method)\s+(?:named\s+|called\s+)?`([A-Za-z_]\w*)(?:\([^`\n]*\))?`"),
    re.compile(r"\b(?:named|called)\s+`([A-Za-z_]\w*)(?:\([^`\n]*\))?`"),
    re.compile(r"\b(?:function|method)\s+(?:named\s+|called\s+)?([A-Za-z_]\w*)\("),
    re.compile(r"\b(?:named|called)\s+([A-Za-z_]\w*_\w*)\b"),
    re.compile(r"`([A-Za-z_]\w*)\([^`\n]*\)`"),
)


def function_def(tree: ast.Module, name: str) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    """The last top-level definition of function ``name`` in ``tree`` (the one that wins at runtime)."""
    found = None
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            found = node
    return found


def query_signature(query: str, name: str) -> ast.arguments | None:
    """The parameters the query's ``def name(...)`` declares, or None when it declares none."""
    try:
        tree = ast.parse(textwrap.dedent(query))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        tree = None
    if tree is not None:
        found = function_def(tree, name)
        return found.args if found else None
    match = re.search(rf"\bdef\s+{re.escape(name)}\s*\(", query)
    if not match:
        return None
    end = balanced_end(query, match.end() - 1)
    if end is None:
        return None
    try:
        stub = ast.parse(f"def {name}{query[match.end() - 1:end]}: pass")
    except (SyntaxError, ValueError, RecursionError):
        return None
    return stub.body[0].args


def signature_problem(expected: ast.arguments, actual: ast.arguments, name: str) -> str | None:
    """Why a function with ``actual`` parameters cannot be called like one with ``expected``, or None."""
    exp_pos = expected.posonlyargs + expected.args
    act_pos = actual.posonlyargs + actual.args
    exp_required = len(exp_pos) - len(expected.defaults)
    act_required = len(act_pos) - len(actual.defaults)
    want = ", ".join(a.arg for a in exp_pos) or "no parameters"
    if act_required > exp_required:
        return f"{name}() requires {act_required} positional arguments; the query's signature passes {exp_required} ({want})"
    if len(act_pos) < len(exp_pos) and actual.vararg is None:
        return f"{name}() takes {len(act_pos)} positional arguments; the query's signature has {len(exp_pos)} ({want})"
    missing = [a.arg for a, d in zip(actual.kwonlyargs, actual.kw_defaults) if d is None]
    if missing:
        return f"{name}() requires keyword-only arguments the query's signature lacks: {', '.join(missing)}"
    return None


def unfinished(tree: ast.Module) -> str | None:
    """Why the code looks unfinished (a function that is only a stub, or raises NotImplementedError), or None."""
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or _is_abstract(node):
            continue
        if _is_stub(node):
            return f"{node.name}() has no body (only a docstring, pass or ...)"
        for inner in ast.walk(node):
            if isinstance(inner, ast.Raise) and _names_not_implemented(inner.exc):
                return f"{node.name}() raises NotImplementedError"
    return None


def undefined_names(tree: ast.Module, *, limit: int = 5) -> list[str]:
    """Names the code reads but never binds, imports or gets from builtins (pyflakes' scope rules)."""
    from pyflakes import messages
    from pyflakes.checker import Checker

    found = [
        m.message_args[0]
        for m in Checker(tree, filename="<candidate>").messages
        if isinstance(m, (messages.UndefinedName, messages.UndefinedLocal))
    ]
    return list(dict.fromkeys(found))[:limit]


def completion_of(code: str, query: str) -> str:
    """The part of ``code`` the candidate wrote itself: the code after the prompt it repeats, if any."""
    prompt = query.strip()
    if prompt and prompt in code:
        return code[code.index(prompt) + len(prompt):]
    return code


def balanced_end(text: str, start: int, *, limit: int = 20_000) -> int | None:
    """Index just past the bracket that closes the one at ``text[start]``, skipping string literals."""
    pairs = {"(": ")", "[": "]", "{": "}"}
    stack: list[str] = []
    i, end = start, min(len(text), start + limit)
    while i < end:
        ch = text[i]
        if ch in "\"'":
            i = _string_end(text, i, end)
            if i is None:
                return None
            continue
        if ch in pairs:
            stack.append(pairs[ch])
        elif ch in ")]}":
            if not stack or stack.pop() != ch:
                return None
            if not stack:
                return i + 1
        i += 1
    return None


def _string_end(text: str, i: int, end: int) -> int | None:
    quote = text[i] * 3 if text.startswith(text[i] * 3, i) else text[i]
    j = i + len(quote)
    while j < end:
        if text[j] == "\\":
            j += 2
            continue
        if text.startswith(quote, j):
            return j + len(quote)
        if len(quote) == 1 and text[j] == "\n":
            return None
        j += 1
    return None


def _body_without_docstring(node: ast.FunctionDef | ast.AsyncFunctionDef) -> list[ast.stmt]:
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(
        body[0].value.value, str
    ):
        body = body[1:]
    return body


def _is_stub(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return all(
        isinstance(s, ast.Pass) or (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant) and s.value.value is ...)
        for s in _body_without_docstring(node)
    )


def _is_abstract(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
        if name in {"abstractmethod", "overload", "abstractproperty"}:
            return True
    return False


def _names_not_implemented(exc: ast.expr | None) -> bool:
    if isinstance(exc, ast.Call):
        exc = exc.func
    return isinstance(exc, ast.Name) and exc.id == "NotImplementedError"


# --- Examples in a query's docstring -------------------------------------------------------------


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


def _doctest_examples(text: str, entry: str):
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
        ok, expected = _literal_node(expr.comparators[0])
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
    if not all(_literal_node(v)[0] for v in values):
        return None
    return ast.unparse(ast.Call(ast.Name(entry, ast.Load()), values, []))


def _parse_expression(source: str) -> ast.Expression | None:
    if len(source) > 20_000:
        return None
    try:
        return ast.parse(source.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


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
                if any(kw.arg is None for kw in inner.keywords) or not all(_literal_node(a)[0] for a in arguments):
                    return False
                calls_entry = True
    return calls_entry


def _literal_node(node: ast.AST) -> tuple[bool, object]:
    try:
        return True, ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
        return False, None


def _literal_text(source: str) -> tuple[bool, object]:
    """A Python literal, or a JSON value (``true``, ``null``) as docstrings sometimes write them."""
    source = source.strip()
    if not source or len(source) > 20_000:
        return False, None
    try:
        return True, ast.literal_eval(source)
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
        pass
    import json

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
            j = _string_end(text, i, len(text))
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
