"""The values that flow through rerank: requests, candidates, checks and rankings."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

from .errors import InputError

MAX_TEXT_CHARS = 1_000_000
"""Longest candidate, query or context accepted, in characters."""


def _check_text(value: Any, field_name: str, *, optional: bool) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        kind = "a string or null" if optional else "a string"
        raise InputError(f"{field_name} must be {kind}, got {type(value).__name__}")
    if len(value) > MAX_TEXT_CHARS:
        raise InputError(f"{field_name} is {len(value):,} characters; the limit is {MAX_TEXT_CHARS:,}")
    return value


@dataclass(frozen=True)
class ToolCall:
    """One function call of an assistant message, as OpenAI's ``tool_calls`` entries hold it.

    ``arguments`` is the raw JSON text the model wrote, which may not parse.
    """

    name: str
    arguments: str
    id: str | None = None

    @classmethod
    def coerce(cls, value: Any) -> "ToolCall":
        """Build from an OpenAI ``tool_calls`` entry (``{"function": {"name", "arguments"}}``)."""
        if isinstance(value, ToolCall):
            return value
        if not isinstance(value, Mapping):
            raise InputError(f"a tool call must be an object, got {type(value).__name__}")
        function = value.get("function", value)
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            raise InputError('a tool call needs {"function": {"name": str, "arguments": str}}')
        arguments = function.get("arguments", "{}")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments)
        return cls(name=function["name"], arguments=arguments, id=value.get("id"))

    def to_dict(self) -> dict[str, Any]:
        """The OpenAI wire shape of this call."""
        out: dict[str, Any] = {"type": "function", "function": {"name": self.name, "arguments": self.arguments}}
        if self.id is not None:
            out = {"id": self.id, **out}
        return out


@dataclass(frozen=True)
class Candidate:
    """One candidate answer: an assistant message with text ``content`` and/or ``tool_calls``."""

    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()

    @classmethod
    def coerce(cls, value: Any) -> "Candidate":
        """Accept a string (the content), an assistant-message mapping, or a Candidate."""
        if isinstance(value, Candidate):
            return value
        if isinstance(value, str):
            return cls(content=_check_text(value, "candidate", optional=False))
        if isinstance(value, Mapping):
            content = _check_text(value.get("content"), "candidate content", optional=True)
            raw_calls = value.get("tool_calls") or ()
            if not isinstance(raw_calls, (list, tuple)):
                raise InputError(f"tool_calls must be a list, got {type(raw_calls).__name__}")
            return cls(content=content, tool_calls=tuple(ToolCall.coerce(c) for c in raw_calls))
        raise InputError(
            f"a candidate must be a string or an assistant message object, got {type(value).__name__}"
        )

    @property
    def text(self) -> str:
        """The content, followed by each tool call written as ``name(arguments)``: what text scorers read."""
        parts = [self.content] if self.content else []
        parts += [f"{call.name}({call.arguments})" for call in self.tool_calls]
        return "\n".join(parts)

    def to_message(self) -> dict[str, Any]:
        """The OpenAI assistant-message shape of this candidate."""
        message: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = [call.to_dict() for call in self.tool_calls]
        return message


@dataclass(frozen=True)
class Request:
    """What the candidates answer: the query, and what they must stay faithful or conform to.

    ``tools`` are in OpenAI's ``tools`` format; ``schema`` is a JSON Schema the answer must match.
    """

    query: str
    context: str | None = None
    tools: tuple[Mapping[str, Any], ...] = ()
    schema: Mapping[str, Any] | None = None
    model: str | None = None
    """The model the candidates came from, when known (a judge asks the same one by default)."""

    @classmethod
    def coerce(cls, value: Any) -> "Request":
        """Accept a Request, a query string, or a mapping with query/context/tools/schema."""
        if isinstance(value, Request):
            return value
        if isinstance(value, str):
            return cls(query=_check_text(value, "query", optional=False) or "")
        if not isinstance(value, Mapping):
            raise InputError(f"a request must be a string or an object, got {type(value).__name__}")
        query = value.get("query")
        query = "" if query is None else _check_text(query, "query", optional=False)
        context = value.get("context")
        if isinstance(context, list) and all(isinstance(p, str) for p in context):
            context = "\n\n".join(context)
        context = _check_text(context, "context", optional=True)
        tools = value.get("tools") or ()
        if not isinstance(tools, (list, tuple)) or not all(isinstance(t, Mapping) for t in tools):
            raise InputError("tools must be a list of objects in OpenAI's tools format")
        schema = value.get("schema")
        if schema is not None and not isinstance(schema, Mapping):
            raise InputError(f"schema must be a JSON Schema object, got {type(schema).__name__}")
        return cls(query=query or "", context=context or None, tools=tuple(tools), schema=schema)


@dataclass(frozen=True)
class Check:
    """One validator's verdict on one candidate; ``message`` tells a person what to fix."""

    validator: str
    passed: bool
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON shape: ``{"validator", "passed", "message"}``."""
        return {"validator": self.validator, "passed": self.passed, "message": self.message}


@dataclass(frozen=True)
class ScoredCandidate:
    """A candidate with its place in the ranking and everything that decided it.

    ``raw`` holds each scorer's own value; ``components`` each scorer's weighted, pool-normalised
    contribution, whose sum is ``score``.
    """

    index: int
    candidate: Candidate
    rank: int
    score: float
    components: Mapping[str, float]
    raw: Mapping[str, float]
    checks: tuple[Check, ...] = ()
    usage: Mapping[str, Any] | None = None
    """What generating this candidate cost, as the API reported it (its share of a response with several choices)."""

    @property
    def passed(self) -> bool:
        """True when every validator that ran accepted this candidate."""
        return all(check.passed for check in self.checks)

    def to_dict(self) -> dict[str, Any]:
        """JSON shape used by the CLI and attached to middleware responses."""
        out = {
            "index": self.index,
            "rank": self.rank,
            "score": round(self.score, 6),
            "passed": self.passed,
            "components": {k: round(v, 6) for k, v in self.components.items()},
            "raw": {k: round(v, 6) for k, v in self.raw.items()},
            "checks": [c.to_dict() for c in self.checks],
        }
        if self.usage is not None:
            out["usage"] = dict(self.usage)
        return out


@dataclass(frozen=True)
class Ranking:
    """Every candidate of one pool, best first, and how the pool was scored."""

    candidates: tuple[ScoredCandidate, ...]
    profile: str = "default"
    weights: Mapping[str, float] = field(default_factory=dict)
    failures: tuple[str, ...] = ()
    """Candidates that never reached scoring (e.g. a failed generation), as messages."""
    timings: Mapping[str, float] = field(default_factory=dict)
    """Seconds each scorer and validator took on this pool."""
    spent: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """What scorers that call a model (the judge) spent: ``{name: {"calls", "usage", "failures"}}``."""
    generation: Mapping[str, Any] = field(default_factory=dict)
    """How the candidates were generated, when rerank generated them: requests, candidates, tokens,
    adaptive rounds and why generation stopped (see :func:`rerank.wire.ledger`)."""

    @property
    def best(self) -> ScoredCandidate:
        """The winning candidate."""
        return self.candidates[0]

    @property
    def best_index(self) -> int:
        """The input position of the winning candidate."""
        return self.best.index

    @property
    def all_failed(self) -> bool:
        """True when validators ran and no candidate passed them all (the best is returned anyway)."""
        return any(c.checks for c in self.candidates) and not any(c.passed for c in self.candidates)

    def top_k(self, k: int) -> list[ScoredCandidate]:
        """The ``k`` best candidates, best first."""
        return list(self.candidates[:k])

    def by_index(self) -> list[ScoredCandidate]:
        """Every candidate in input order."""
        return sorted(self.candidates, key=lambda c: c.index)

    def __iter__(self) -> Iterator[ScoredCandidate]:
        return iter(self.candidates)

    def __len__(self) -> int:
        return len(self.candidates)

    def to_dict(self) -> dict[str, Any]:
        """JSON shape: best index, profile, weights, all_failed, and candidates in input order."""
        out: dict[str, Any] = {
            "best_index": self.best_index,
            "profile": self.profile,
            "all_failed": self.all_failed,
            "weights": dict(self.weights),
            "candidates": [c.to_dict() for c in self.by_index()],
        }
        if self.failures:
            out["failures"] = list(self.failures)
        if self.spent:
            out["spent"] = {name: dict(value) for name, value in self.spent.items()}
        if self.generation:
            out["generation"] = dict(self.generation)
        return out


def coerce_candidates(values: Sequence[Any]) -> list[Candidate]:
    """Turn a list of strings / messages into Candidates; refuse an empty or non-list pool."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise InputError(f"candidates must be a list, got {type(values).__name__}")
    if not values:
        raise InputError("candidates is empty: give at least one candidate")
    out = []
    for i, value in enumerate(values):
        try:
            out.append(Candidate.coerce(value))
        except InputError as exc:
            raise InputError(f"candidate {i}: {exc}") from None
    return out
