"""Names of scorers and validators: the built-in ones, then installed plugins."""

from __future__ import annotations

import inspect
from importlib import import_module
from typing import Any

from . import plugins
from .errors import ConfigError, UnknownNameError
from .scorers.base import Scorer, Validator

BUILTIN_SCORERS: dict[str, str] = {
    "relevance": "rerank.scorers.embedding:EmbeddingRelevance",
    "grounding": "rerank.scorers.embedding:EmbeddingGrounding",
    "bm25": "rerank.scorers.bm25:BM25Relevance",
    "bm25-grounding": "rerank.scorers.bm25:BM25Grounding",
    "consensus": "rerank.scorers.consensus:Consensus",
    "coverage": "rerank.scorers.coverage:Coverage",
    "char-consensus": "rerank.scorers.char_consensus:CharConsensus",
    "json-consensus": "rerank.scorers.json_consensus:JSONConsensus",
    "structure": "rerank.scorers.structure:Structure",
    "tool-consensus": "rerank.scorers.tool_consensus:ToolConsensus",
    "tool-types": "rerank.scorers.tool_types:ToolArgumentTypes",
    "code-consensus": "rerank.scorers.code:CodeConsensus",
    "simplicity": "rerank.scorers.code:Simplicity",
    "execution": "rerank.scorers.execution:ExecutionConsensus",
    "instructions": "rerank.scorers.instructions:InstructionsFollowed",
    "judge": "rerank.scorers.judge:LLMJudge",
}

BUILTIN_VALIDATORS: dict[str, str] = {
    "json": "rerank.validators.json_validators:JSONValidator",
    "json-schema": "rerank.validators.json_validators:JSONSchemaValidator",
    "tools": "rerank.validators.tools:ToolCallValidator",
    "python": "rerank.validators.python:PythonValidator",
    "python-doctest": "rerank.validators.python:DoctestValidator",
    "regex": "rerank.validators.text:RegexValidator",
    "length": "rerank.validators.text:LengthValidator",
    "instructions": "rerank.validators.text:InstructionsValidator",
}


def _import(target: str) -> type:
    module, _, attr = target.partition(":")
    try:
        cls: type = getattr(import_module(module), attr)
    except ImportError as exc:
        raise ConfigError(f"built-in {target} failed to import ({exc}); reinstall rerank") from exc
    return cls


def scorer_class(name: str) -> type[Scorer]:
    """The Scorer class called ``name``: built-in first, then a plugin."""
    cls = _import(BUILTIN_SCORERS[name]) if name in BUILTIN_SCORERS else _plugin(name, "scorer")
    if not issubclass(cls, (Scorer, Validator)):
        raise ConfigError(f"{name!r} is neither a rerank Scorer nor a Validator")
    if not issubclass(cls, Scorer):
        raise ConfigError(f"{name!r} is a validator, not a scorer: use it as --validator {name}")
    return cls


def validator_class(name: str) -> type[Validator]:
    """The Validator class called ``name``: built-in first, then a plugin."""
    cls = _import(BUILTIN_VALIDATORS[name]) if name in BUILTIN_VALIDATORS else _plugin(name, "validator")
    if not issubclass(cls, (Scorer, Validator)):
        raise ConfigError(f"{name!r} is neither a rerank Scorer nor a Validator")
    if not issubclass(cls, Validator):
        raise ConfigError(f"{name!r} is a scorer, not a validator: use it as --scorer {name}")
    return cls


def make_scorer(name: str, **options: Any) -> Scorer:
    """An instance of the scorer called ``name``, given those ``options`` its constructor takes."""
    cls = scorer_class(name)
    accepted = inspect.signature(cls).parameters
    return cls(**{k: v for k, v in options.items() if k in accepted})


def make_validator(name: str, **options: Any) -> Validator:
    """An instance of the validator called ``name``."""
    return validator_class(name)(**options)


def _plugin(name: str, kind: str) -> type:
    try:
        return plugins.load(name)
    except UnknownNameError:
        known = sorted(BUILTIN_SCORERS if kind == "scorer" else BUILTIN_VALIDATORS)
        raise UnknownNameError(
            f"unknown {kind} {name!r}: built-in {kind}s are {', '.join(known)}; "
            f"installed plugins are listed by `rerank plugins`",
            name=name, kind=kind,
        ) from None
