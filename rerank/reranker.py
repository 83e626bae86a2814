"""Reranker: runs scorers and validators over a pool, combines them, and explains the result."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from .embeddings import check_backend
from .errors import AllCandidatesFailedError, ConfigError
from .profiles import EXECUTING_VALIDATORS, PROFILES, Profile, choose_profile
from .registry import make_scorer, make_validator
from .scorers.base import Paid, Scorer, Validator
from .scorers.embedding import EmbeddingRelevance, encode_ahead
from .types import Candidate, Check, Ranking, Request, ScoredCandidate, coerce_candidates


class Reranker:
    """Ranks a pool of candidate answers to one request, best first.

    By default the request picks a profile (chat, grounded, tools, json, code) that names the
    scorers and their weights; ``weights`` override them (a weight adds a scorer the profile
    lacks, 0 removes one) and ``scorers`` replaces the profile's list. Validators named in
    ``validators`` always run; with ``auto_validators`` the request's ``tools`` turn on the tools
    validator and its ``schema`` the json-schema one. ``strict`` raises when no candidate passes.
    ``model`` is the embedding model (a local directory) for the embedding scorers.
    ``profile_weights`` maps a profile name to weights that replace that profile's defaults
    (e.g. learned by ``rerank fit``); ``weights`` still override them. ``unsafe_exec`` lets the
    validators and scorers that execute candidate code, named here, run it without isolation
    where the sandbox cannot isolate it (otherwise they raise :class:`~rerank.errors.SandboxError`).
    ``embedding_backend`` names how the embedding scorers encode (``torch``, ``static``;
    default :data:`rerank.embeddings.DEFAULT_BACKEND`), loaded on the first pool that needs it.
    ``add_scorers`` adds scorer instances, each with its weight, to every profile (the LLM
    judge is added this way).
    """

    def __init__(
        self,
        *,
        scorers: Sequence[str | Scorer] | None = None,
        validators: Sequence[str | Validator] = (),
        weights: Mapping[str, float] | None = None,
        auto_validators: bool = True,
        strict: bool = False,
        model: str | None = None,
        profile_weights: Mapping[str, Mapping[str, float]] | None = None,
        unsafe_exec: bool = False,
        embedding_backend: str | None = None,
        add_scorers: Sequence[tuple[Scorer, float]] = (),
    ) -> None:
        self._cache: dict[tuple[str, str], Any] = {}
        self._scorer_options: dict[str, Any] = {"model": model} if model else {}
        self._unsafe_exec = bool(unsafe_exec)
        if unsafe_exec:
            self._scorer_options["unsafe_exec"] = True  # make_scorer passes it only to scorers that take it
        if embedding_backend is not None:
            self._scorer_options["embedding_backend"] = check_backend(embedding_backend)
        for scorer, _ in add_scorers:
            self._cache[("scorer", scorer.name)] = scorer
        self._added = {scorer.name: float(weight) for scorer, weight in add_scorers}
        self._fixed_scorers = None if scorers is None else [self._scorer(s) for s in scorers]
        self._validators = [self._validator(v) for v in validators]
        self._weights = dict(weights or {})
        self._check_weights(self._weights, "weight")
        self._profile_weights: dict[str, dict[str, float]] = {}
        for profile, mapping in (profile_weights or {}).items():
            if profile not in PROFILES:
                raise ConfigError(f"weights for unknown profile {profile!r}: the profiles are "
                                  f"{', '.join(PROFILES)}")
            if not isinstance(mapping, Mapping):
                raise ConfigError(f"weights for profile {profile!r} must map scorer names to numbers, "
                                  f"got {type(mapping).__name__}")
            self._profile_weights[profile] = dict(mapping)
            self._check_weights(self._profile_weights[profile], f"{profile} profile weight")
        self.auto_validators = auto_validators
        self.strict = strict

    def _check_weights(self, weights: Mapping[str, float], what: str) -> None:
        for name, value in weights.items():
            if not isinstance(value, (int, float)) or not np.isfinite(value):
                raise ConfigError(f"{what} for {name!r} must be a finite number, got {value!r}")
            if self._fixed_scorers is None:
                self._scorer(name)  # an unknown name fails now, not on the first pool
            elif name not in {s.name for s in self._fixed_scorers}:
                raise ConfigError(f"{what} for {name!r} names no scorer in use: "
                                  f"{', '.join(s.name for s in self._fixed_scorers)}")

    def _scorer(self, spec: str | Scorer) -> Scorer:
        if isinstance(spec, Scorer):
            return spec
        key = ("scorer", spec)
        if key not in self._cache:
            self._cache[key] = make_scorer(spec, **self._scorer_options)
        scorer: Scorer = self._cache[key]
        return scorer

    def _validator(self, spec: str | Validator) -> Validator:
        if isinstance(spec, Validator):
            return spec
        key = ("validator", spec)
        if key not in self._cache:
            options = {"unsafe_exec": True} if self._unsafe_exec and spec in EXECUTING_VALIDATORS else {}
            self._cache[key] = make_validator(spec, **options)
        validator: Validator = self._cache[key]
        return validator

    def plan(self, request: Request) -> tuple[Profile, list[tuple[Scorer, float]], list[Validator]]:
        """The profile, the (scorer, weight) pairs and the validators that ``rank`` would use."""
        profile = choose_profile(request, [v.name for v in self._validators])
        defaults = self._profile_weights.get(profile.name, profile.weights)
        if self._fixed_scorers is not None:
            scorers = self._fixed_scorers
        else:
            names = list(defaults) + [n for n in [*self._weights, *self._added] if n not in defaults]
            scorers = [self._scorer(name) for name in dict.fromkeys(names)]
        weighted = []
        for scorer in scorers:
            weight = self._weights.get(scorer.name, self._added.get(scorer.name, defaults.get(scorer.name, 1.0)))
            if weight and scorer.applies(request):
                weighted.append((scorer, float(weight)))
        validators = list(self._validators)
        if self.auto_validators:
            present = {v.name for v in validators}
            for name in profile.validators:
                if name not in present:
                    validators.append(self._validator(name))
        return profile, weighted, [v for v in validators if v.applies(request)]

    def measure(self, request: Request | str | Mapping[str, Any], candidates: Sequence[Any]) -> Signals:
        """Run every validator and scorer on the pool; ``combine`` turns the result into a ranking."""
        request = Request.coerce(request)
        pool = coerce_candidates(candidates)
        profile, weighted, validators = self.plan(request)
        timings: dict[str, float] = {}
        checks: list[list[Check]] = [[] for _ in pool]
        for validator in validators:
            start = time.perf_counter()
            for i, check in enumerate(validator.check_pool(request, pool)):
                checks[i].append(check)
            timings[validator.name] = time.perf_counter() - start
        weighted = [(scorer, weight) for scorer, weight in weighted if len(pool) >= scorer.min_candidates]
        # The pool's texts for every embedding scorer in one batch; each scorer then reads the cache.
        start = time.perf_counter()
        encode_ahead([([scorer for scorer, _ in weighted], request, pool)])
        encoded = time.perf_counter() - start
        raw: dict[str, np.ndarray] = {}
        spent: dict[str, Paid] = {}
        for scorer, _ in weighted:
            start = time.perf_counter()
            scores = scorer.score(request, pool)
            if isinstance(scores, Paid):
                spent[scorer.name], scores = scores, scores.scores
            raw[scorer.name] = np.asarray(scores, dtype=float)
            timings[scorer.name] = time.perf_counter() - start
        embedding = [scorer.name for scorer, _ in weighted if isinstance(scorer, EmbeddingRelevance)]
        for name in embedding:  # the shared batch is charged to its scorers in equal parts
            timings[name] += encoded / len(embedding)
        return Signals(
            pool=pool,
            profile=profile.name,
            weights={s.name: w for s, w in weighted},
            min_spread={s.name: s.min_spread for s, _ in weighted},
            raw=raw,
            checks=[tuple(c) for c in checks],
            timings=timings,
            spent=spent,
        )

    def combine(self, signals: Signals, *, weights: Mapping[str, float] | None = None) -> Ranking:
        """Rank a measured pool: gates first, then the weighted sum of pool-normalised scores.

        ``weights`` replaces the measured weights (a scorer left out counts zero): this is how
        ablations re-rank a pool without measuring it again.
        """
        weights = dict(signals.weights if weights is None else weights)
        n = len(signals.pool)
        components = {
            name: weights[name] * normalise(values, signals.min_spread[name])
            for name, values in signals.raw.items()
            if weights.get(name)
        }
        total = np.sum(list(components.values()), axis=0) if components else np.zeros(n)
        # Equal candidates must tie exactly despite float noise (BLAS rows differ by ~1e-8, then
        # scaled by 1/min_spread): totals are in spreads, so 1e-6 is far below any real difference.
        tie_key = np.round(total, 6)
        checks = signals.checks
        gates = [gate_rank(cs) for cs in checks]
        keys = tie_key.tolist()
        order = sorted(range(n), key=lambda i: (-gates[i][0], -gates[i][1], -keys[i], i))
        # Python floats once per signal (the same values as float(v[i]), without a numpy scalar each).
        totals = np.asarray(total, dtype=float).tolist()
        parts = {name: np.asarray(v, dtype=float).tolist() for name, v in components.items()}
        raws = {name: np.asarray(v, dtype=float).tolist() for name, v in signals.raw.items()}
        ranked = tuple(
            ScoredCandidate(
                index=i,
                candidate=signals.pool[i],
                rank=rank,
                score=totals[i],
                components={name: v[i] for name, v in parts.items()},
                raw={name: v[i] for name, v in raws.items()},
                checks=checks[i],
            )
            for rank, i in enumerate(order)
        )
        ranking = Ranking(
            candidates=ranked,
            profile=signals.profile,
            weights={k: v for k, v in weights.items() if v},
            timings=dict(signals.timings),
            spent={name: paid.to_dict() for name, paid in signals.spent.items()},
        )
        if self.strict and ranking.all_failed:
            failed = "; ".join(c.message for c in ranking.best.checks if not c.passed)
            raise AllCandidatesFailedError(
                f"all {n} candidates failed validation (best candidate: {failed})", ranking
            )
        return ranking

    def rank(self, request: Request | str | Mapping[str, Any], candidates: Sequence[Any]) -> Ranking:
        """Rank ``candidates`` (strings, assistant messages or Candidates) for ``request``."""
        return self.combine(self.measure(request, candidates))


@dataclass(frozen=True)
class Signals:
    """Everything measured on one pool, before weights turn it into a ranking."""

    pool: list[Candidate]
    profile: str
    weights: Mapping[str, float]
    min_spread: Mapping[str, float]
    raw: Mapping[str, np.ndarray]
    checks: list[tuple[Check, ...]]
    timings: Mapping[str, float]
    spent: Mapping[str, Paid] = field(default_factory=dict)


def gate_rank(checks: Sequence[Check]) -> tuple[bool, int]:
    """How far a candidate got through its gates: passing them all first, then passing more."""
    return all(c.passed for c in checks), sum(c.passed for c in checks)


def normalise(values: np.ndarray, min_spread: float) -> np.ndarray:
    """Centre a pool's scores and scale by their spread, never by less than ``min_spread``."""
    if len(values) < 2:
        return np.zeros_like(values)
    centred: np.ndarray = values - values.mean()
    return centred / max(float(values.std()), min_spread)
