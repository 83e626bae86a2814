"""rerank: ask an LLM several times and hand back the best answer."""

from .errors import (
    AllCandidatesFailedError,
    ConfigError,
    GenerationError,
    InputError,
    PluginError,
    RerankError,
    SandboxError,
    UnknownNameError,
)
from .reranker import Reranker
from .scorers.base import Scorer, Validator
from .types import Candidate, Check, Ranking, Request, ScoredCandidate, ToolCall

__all__ = [
    "AllCandidatesFailedError",
    "Candidate",
    "Check",
    "ConfigError",
    "GenerationError",
    "InputError",
    "PluginError",
    "Ranking",
    "Request",
    "Reranker",
    "RerankError",
    "SandboxError",
    "ScoredCandidate",
    "Scorer",
    "ToolCall",
    "UnknownNameError",
    "Validator",
    "best_of",
    "explain",
    "wrap",
]

_LAZY = {"wrap": "middleware", "explain": "middleware", "best_of": "decorator"}


def __getattr__(name: str) -> object:
    # The SDK edges import openai; load them only when asked for, so `import rerank` stays light.
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
