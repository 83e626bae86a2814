"""Picking the best of N for one API call: the options, the rerankers, the ranking.

Shared by the two edges that answer OpenAI calls, ``rerank.wrap`` (:mod:`rerank.middleware`)
and ``rerank serve`` (:mod:`rerank.serve`), so both pick the same winner from the same candidates.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping

from .errors import ConfigError
from .generate import DEFAULT_CONCURRENCY, Generation, check_options
from .reranker import Reranker
from .types import Ranking
from .wire import SYSTEM_MESSAGES, Call, request_of

ContextOption = str | Callable[[Mapping[str, Any]], str | None] | None


@dataclass(frozen=True)
class Options:
    """How candidates are generated and picked; see :func:`rerank.wrap`."""

    n: int = 4
    models: tuple[str, ...] = ()
    concurrency: int = DEFAULT_CONCURRENCY
    deadline: float | None = None
    native_n: bool = True
    context: ContextOption = None


class Selector:
    """Options per call, a reranker per response format, and the ranking of a call's candidates."""

    def __init__(self, options: Options, *, reranker: Reranker | None = None,
                 reranker_options: Mapping[str, Any] | None = None) -> None:
        self.options = options
        self._given = reranker
        self._reranker_options = dict(reranker_options or {})
        self._rerankers: dict[tuple[str, ...], Reranker] = {}
        # (URL, model) pairs whose server rejected or ignored `n`: later calls skip straight to
        # single requests instead of losing a round trip each time.
        self._no_native_n: set[tuple[str, str | None]] = set()
        if reranker is None:
            self.reranker(())  # unknown scorers or validators fail now, not at the first call

    def reranker(self, extra_validators: tuple[str, ...]) -> Reranker:
        """The reranker for a call; a ``json_object`` response format adds the json validator."""
        if self._given is not None:
            return self._given
        if extra_validators not in self._rerankers:
            options = dict(self._reranker_options)
            validators = list(options.pop("validators", ()))
            validators += [v for v in extra_validators if v not in validators]
            self._rerankers[extra_validators] = Reranker(validators=validators, **options)
        return self._rerankers[extra_validators]

    def options_for(self, call: Call, url: str) -> Options:
        """The options of one call: the defaults with its overrides, checked before anything is sent."""
        options = replace(self.options, **call.overrides)
        check_options(kind=call.kind, n=options.n, models=options.models, concurrency=options.concurrency,
                      deadline=options.deadline)
        models = options.models or (call.body.get("model"),)
        if any((url, model) in self._no_native_n for model in models):
            options = replace(options, native_n=False)
        return options

    def learn(self, url: str, generation: Generation) -> None:
        """Remember the models whose server at ``url`` did not honour ``n``."""
        self._no_native_n.update((url, model) for model in generation.n_unsupported)

    def rank(self, call: Call, options: Options, generation: Generation) -> Ranking:
        """Rank the candidates generated for a call (strict mode raises AllCandidatesFailedError)."""
        context = options.context
        if context is None:
            context = SYSTEM_MESSAGES
        elif callable(context):
            context = context(call.body) or None
        request, validators = request_of(call.kind, call.body, context=context)
        reranker = self.reranker(validators)
        signals = reranker.measure(request, [g.message for g in generation.candidates])
        unknown = set(call.weights) - set(signals.weights)
        if unknown:
            raise ConfigError(
                f"per-call weights name scorers not used for this request: {', '.join(sorted(unknown))}; "
                f"in use: {', '.join(signals.weights) or 'none'}"
            )
        weights = {**signals.weights, **call.weights} if call.weights else None
        ranking = reranker.combine(signals, weights=weights)
        return replace(ranking, failures=generation.failure_messages())
