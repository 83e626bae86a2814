"""Picking the best of N for one API call: the options, the rerankers, the ranking.

Shared by the two edges that answer OpenAI calls, ``rerank.wrap`` (:mod:`rerank.middleware`)
and ``rerank serve`` (:mod:`rerank.serve`), so both pick the same winner from the same candidates.
Every option of a call, per-call weights included, is checked once in :meth:`Selector.options_for`,
before anything is sent.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping, Sequence

from .adaptive import Fanning, check_fanning
from .agreement import Agreement, agreement, gates_passed
from .errors import ConfigError, InputError
from .generate import MAX_CANDIDATES, Generated, Generation, check_options
from .reranker import Reranker
from .types import Candidate, Ranking, Request
from .wire import SYSTEM_MESSAGES, Call, request_of

ContextOption = str | Callable[[Mapping[str, Any]], str | None] | None


@dataclass(frozen=True)
class Options(Fanning):
    """How candidates are generated and picked; see :func:`rerank.wrap`.

    The fan-out fields are :class:`rerank.adaptive.Fanning`'s (so options are what a call's
    rounds run on); ``context`` is the grounding context option. With ``adaptive``
    (``n="auto"``), ``n`` is ``max_n``: the most candidates a call may buy.
    """

    n: int = 4
    context: ContextOption = None

    @classmethod
    def of(cls, *, n: int | str = 4, **fields: Any) -> "Options":
        """Options from user-facing values (``n`` may be ``"auto"``), checked."""
        options = cls(**fields)._with_n(n)
        options.check()
        return options

    def _with_n(self, n: Any) -> "Options":
        if n == "auto":
            return replace(self, adaptive=True, n=self.max_n)
        return replace(self, adaptive=False, n=n)

    def check(self, kind: str = "chat") -> None:
        """Raise ConfigError for an option that cannot work."""
        check_options(kind=kind, n=self.n, models=self.models, concurrency=self.concurrency, deadline=self.deadline)
        check_fanning(adaptive=self.adaptive, min_n=self.min_n, max_n=self.max_n, top_up=self.top_up,
                      settle=self.settle, strategy=self.strategy, max_tokens_total=self.max_tokens_total, most=MAX_CANDIDATES)
        if self.context is not None and not (isinstance(self.context, str) or callable(self.context)):
            raise ConfigError(f"context must be a string or a function of the request body, got {self.context!r}")


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
        """The options of one call: the defaults with its overrides, every one checked (per-call
        weights against the scorers this request uses) before anything is sent."""
        overrides = dict(call.overrides)
        n = overrides.pop("n", "auto" if self.options.adaptive else self.options.n)
        options = replace(self.options, **overrides)._with_n(n)
        options.check(call.kind)
        if call.weights:
            request, reranker = self.request_for(call, options)
            _, weighted, _ = reranker.plan(request)
            in_use = [scorer.name for scorer, _ in weighted]
            unknown = set(call.weights) - set(in_use)
            if unknown:
                raise ConfigError(
                    f"per-call weights name scorers not used for this request: {', '.join(sorted(unknown))}; "
                    f"in use: {', '.join(in_use) or 'none'}"
                )
        models = options.models or (call.body.get("model"),)
        if any((url, model) in self._no_native_n for model in models):
            options = replace(options, native_n=False)
        return options

    def request_for(self, call: Call, options: Options) -> tuple[Request, Reranker]:
        """The Request the scorers get for a call, and the reranker that ranks it."""
        context = options.context
        if context is None:
            context = SYSTEM_MESSAGES
        elif callable(context):
            context = context(call.body) or None
        request, validators = request_of(call.kind, call.body, context=context)
        return request, self.reranker(validators)

    def learn(self, url: str, generation: Generation) -> None:
        """Remember the models whose server at ``url`` did not honour ``n``."""
        self._no_native_n.update((url, model) for model in generation.n_unsupported)

    def judges(self, call: Call, options: Options) -> tuple[Callable[[Sequence[Generated]], Agreement],
                                                            Callable[[Generated], bool]]:
        """``(agree, valid)`` for a call's adaptive rounds and first-valid: whether the usable
        candidates in hand agree and pass every gate, and whether one candidate passes every gate."""
        request, reranker = self.request_for(call, options)
        # Each candidate's gates are judged once per call; keyed by its message, kept alive here.
        verdicts: dict[int, tuple[Any, bool]] = {}

        def valid(generated: Generated) -> bool:
            key = id(generated.message)
            if key not in verdicts:
                candidate = _usable(generated)
                passed = candidate is not None and gates_passed(reranker, request, [candidate])[0]
                verdicts[key] = (generated.message, passed)
            return verdicts[key][1]

        def agree(generated: Sequence[Generated]) -> Agreement:
            usable = [(g, c) for g, c in zip(generated, map(_usable, generated)) if c is not None]
            return agreement(reranker, request, [c for _, c in usable], [valid(g) for g, _ in usable])

        return agree, valid

    def rank(self, call: Call, options: Options, generation: Generation) -> Ranking:
        """Rank the candidates generated for a call (strict mode raises AllCandidatesFailedError)."""
        request, reranker = self.request_for(call, options)
        signals = reranker.measure(request, [g.message for g in generation.candidates])
        weights = {**signals.weights, **call.weights} if call.weights else None
        ranking = reranker.combine(signals, weights=weights)
        return replace(ranking, failures=generation.failure_messages())


def _usable(generated: Generated) -> Candidate | None:
    try:
        return Candidate.coerce(generated.message)
    except InputError:
        return None
