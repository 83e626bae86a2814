"""Task-aware defaults: the request shows its task, and the task picks scorers and weights."""

from __future__ import annotations

import ast
import textwrap
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from .safe_parse import parse_or_none
from .types import Request


@dataclass(frozen=True)
class Profile:
    """A named set of scorer weights and the validators the request's task turns on."""

    name: str
    weights: Mapping[str, float]
    validators: tuple[str, ...] = field(default=())


PROFILES: dict[str, Profile] = {
    # In a pair the agreement scorers drop out (they need a third candidate), and relevance, at
    # more than structure's weight, decides what the query's own instructions leave open.
    "chat": Profile("chat", {"coverage": 1.0, "instructions": 1.0, "relevance": 0.35, "structure": 0.3}),
    "grounded": Profile(
        "grounded",
        {"grounding": 1.0, "bm25-grounding": 1.0, "instructions": 1.0, "consensus": 0.5, "relevance": 0.3},
    ),
    # Structured answers agree on their canonical form (tool-/json-consensus) and on their surface
    # (char-consensus: the same call written the same way); neither needs an embedding model.
    "tools": Profile("tools", {"tool-consensus": 1.0, "char-consensus": 0.6, "tool-types": 0.5}, ("tools",)),
    "json": Profile("json", {"json-consensus": 1.0, "char-consensus": 0.3}, ("json-schema",)),
    "code": Profile("code", {"code-consensus": 1.0, "simplicity": 0.3}),
    "code-exec": Profile("code-exec", {"execution": 1.0, "code-consensus": 1.0, "simplicity": 0.3}),
}

CODE_VALIDATORS = {"python", "python-doctest"}
EXECUTING_VALIDATORS = {"python-doctest"}


def asks_for_code(request: Request) -> bool:
    """True when the query is itself a Python function stub (a signature and a docstring to complete)."""
    if "def" not in request.query:  # no function without the keyword: spare parsing every chat query
        return False
    tree = parse_or_none(textwrap.dedent(request.query))
    if tree is None:
        return False
    return any(isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) for node in tree.body)


def choose_profile(request: Request, validators: Sequence[str] = ()) -> Profile:
    """The profile for this request: tools > schema > code > context > chat.

    Code that runs (``code-exec``) only when the user named a validator that executes code.
    """
    if request.tools:
        return PROFILES["tools"]
    if request.schema is not None:
        return PROFILES["json"]
    if EXECUTING_VALIDATORS & set(validators):
        return PROFILES["code-exec"]
    if CODE_VALIDATORS & set(validators) or asks_for_code(request):
        return PROFILES["code"]
    if request.context:
        return PROFILES["grounded"]
    return PROFILES["chat"]
