"""Static checks of Python code: does it parse, which function a query asks for and with which
parameters, is the candidate's function finished, which names does it read but never define.

Everything here is static: code is parsed with ``ast`` (and compiled, never run) and read with ``re``.
"""

from __future__ import annotations

import ast
import re
import textwrap

from .safe_parse import parse_or_none

MAX_CODE_CHARS = 200_000
"""Longest code (or query) analysed; longer text is refused as too large to be an answer's program."""


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
    tree = parse_or_none(textwrap.dedent(query))
    if tree is not None:
        functions = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        stubs = [f for f in functions if _is_stub(f)]
        if stubs or functions:
            return (stubs or functions)[-1].name
    defs: list[str] = re.findall(r"^[ \t]*(?:async[ \t]+)?def[ \t]+([A-Za-z_]\w*)[ \t]*\(", query, re.M)
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
    tree = parse_or_none(textwrap.dedent(query))
    if tree is not None:
        found = function_def(tree, name)
        return found.args if found else None
    match = re.search(rf"\bdef\s+{re.escape(name)}\s*\(", query)
    if not match:
        return None
    end = balanced_end(query, match.end() - 1)
    if end is None:
        return None
    stub = parse_or_none(f"def {name}{query[match.end() - 1:end]}: pass")
    if stub is None or not isinstance(stub.body[0], ast.FunctionDef):
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

    found: list[str] = [
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
            after = string_end(text, i, end)
            if after is None:
                return None
            i = after
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


def string_end(text: str, i: int, end: int) -> int | None:
    """Index just past the string literal that opens at ``text[i]`` (before ``end``), or None if it does not close."""
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
