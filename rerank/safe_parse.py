"""Parsing untrusted Python text without raising: one guard for every parser in rerank.

``ast.parse`` and ``ast.literal_eval`` fail on hostile or merely odd text in several ways:
``SyntaxError``, ``ValueError`` (null bytes, oversized integers), ``RecursionError`` and
``MemoryError`` (deep nesting), and ``TypeError`` (``literal_eval`` of ``{[]: 1}``). The callers
only want "a tree or nothing" and "a value or nothing".
"""

from __future__ import annotations

import ast
from typing import Literal, overload

PARSE_ERRORS: tuple[type[Exception], ...] = (SyntaxError, ValueError, RecursionError, MemoryError)
"""What ``ast.parse`` raises on text that is not (or is too deep to be) Python."""

LITERAL_ERRORS: tuple[type[Exception], ...] = (*PARSE_ERRORS, TypeError)
"""What ``ast.literal_eval`` raises on a node or text that is not a literal."""


@overload
def parse_or_none(source: str, mode: Literal["exec"] = "exec") -> ast.Module | None: ...
@overload
def parse_or_none(source: str, mode: Literal["eval"]) -> ast.Expression | None: ...
def parse_or_none(source: str, mode: Literal["exec", "eval"] = "exec") -> ast.Module | ast.Expression | None:
    """The syntax tree of ``source`` (a module, or an expression with ``mode="eval"``), or None."""
    try:
        return ast.parse(source, mode="eval") if mode == "eval" else ast.parse(source)
    except PARSE_ERRORS:
        return None


def literal_value(node_or_source: ast.AST | str) -> tuple[bool, object]:
    """``(True, value)`` when ``node_or_source`` is a Python literal, else ``(False, None)``."""
    try:
        return True, ast.literal_eval(node_or_source)
    except LITERAL_ERRORS:
        return False, None
