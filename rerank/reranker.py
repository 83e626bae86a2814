"""Reranker: runs scorers and validators over a pool, combines them, and explains the result."""

from __future__ import annotations

import time
from typing import Any, Mapping, Sequence

import numpy as np

from .errors import AllCandidatesFailedError, ConfigError
from .profiles import Profile, choose_profile
from .registry import make_scorer, make_validator
from .scorers.base import Scorer, Validator
from .types import Candidate, Check, Ranking, Request, ScoredCandidate, coerce_candidates


class Reranker:
    """Ranks a pool of candidate answers to one request, best first.

    By default the request picks a profile (chat, grounded, tools, json, code) that names the
    scorers and their weights; ``scorers`` and ``weights`` override it. Validators named in
    ``validators`` always run; with ``auto_validators`` the request's ``tools`` turn on the tools
    validator and its ``schema`` the json-schema one. ``strict`` raises when no candidate passes.
    """

    def __init__(
        self,
        *,
        scorers: Sequence[str | Scorer] | None = None,
        validators: Sequence[str | Validator] = (),
        weights: Mapping[str, float] | None = None,
        auto_validators: bool = True,
        strict: bool = False,
    ) -> None:
        self._cache: dict[str, Any] = {}
        self._fixed_scorers = None if scorers is None else [self._scorer(s) for s in scorers]
        self._validators = [self._validator(v) for v in validators]
        self._weights = dict(weights or {})
        for name, value in self._weights.items():
            if not isinstance(value, (int, float)) or not np.isfinite(value):
                raise ConfigError(f"weight for {name!r} must be a finite number, got {value!r}")
        self.auto_validators = auto_validators
        self.strict = strict

    def _scorer(self, spec: str | Scorer) -> Scorer:
        return spec if isinstance(spec, Scorer) else self._instance(spec, make_scorer)

    def _validator(self, spec: str | Validator) -> Validator:
        return spec if isinstance(spec, Validator) else self._instance(spec, make_validator)

    def _instance(self, name: str, factory: Any) -> Any:
        if name not in self._cache:
            self._cache[name] = factory(name)
        return self._cache[name]

    def plan(self, request: Request) -> tuple[Profile, list[tuple[Scorer, float]], list[Validator]]:
        """The profile, the (scorer, weight) pairs and the validators that ``rank`` would use."""
        profile = choose_profile(request, [v.name for v in self._validators])
        if self._fixed_scorers is not None:
            scorers = self._fixed_scorers
        else:
            scorers = [self._scorer(name) for name in profile.weights]
        weighted = []
        for scorer in scorers:
            weight = self._weights.get(scorer.name, profile.weights.get(scorer.name, 1.0))
            if weight and scorer.applies(request):
                weighted.append((scorer, float(weight)))
        unknown = set(self._weights) - {s.name for s in scorers}
        if unknown:
            raise ConfigError(
                f"weights name scorers that are not in use: {', '.join(sorted(unknown))}; "
                f"in use: {', '.join(s.name for s in scorers)}"
            )
        validators = list(self._validators)
        if self.auto_validators:
            names = {v.name for v in validators}
            for name in profile.validators:
                if name not in names:
                    validators.append(self._validator(name))
        return profile, weighted, [v for v in validators if v.applies(request)]

    def rank(self, request: Request | str | Mapping[str, Any], candidates: Sequence[Any]) -> Ranking:
        """Rank ``candidates`` (strings, assistant messages or Candidates) for ``request``."""
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

        raw: dict[str, np.ndarray] = {}
        components: dict[str, np.ndarray] = {}
        for scorer, weight in weighted:
            start = time.perf_counter()
            values = np.asarray(scorer.score(request, pool), dtype=float)
            timings[scorer.name] = time.perf_counter() - start
            raw[scorer.name] = values
            components[scorer.name] = weight * normalise(values, scorer.min_spread)

        total = np.sum(list(components.values()), axis=0) if components else np.zeros(len(pool))
        passed_counts = [sum(c.passed for c in cs) for cs in checks]
        order = sorted(
            range(len(pool)),
            key=lambda i: (-all(c.passed for c in checks[i]), -passed_counts[i], -total[i], i),
        )
        ranked = tuple(
            ScoredCandidate(
                index=i,
                candidate=pool[i],
                rank=rank,
                score=float(total[i]),
                components={name: float(v[i]) for name, v in components.items()},
                raw={name: float(v[i]) for name, v in raw.items()},
                checks=tuple(checks[i]),
            )
            for rank, i in enumerate(order)
        )
        ranking = Ranking(
            candidates=ranked,
            profile=profile.name,
            weights={s.name: w for s, w in weighted},
            timings=timings,
        )
        if self.strict and ranking.all_failed:
            failed = "; ".join(c.message for c in ranking.best.checks if not c.passed)
            raise AllCandidatesFailedError(
                f"all {len(pool)} candidates failed validation (best candidate: {failed})", ranking
            )
        return ranking


def normalise(values: np.ndarray, min_spread: float) -> np.ndarray:
    """Centre a pool's scores and scale by their spread, never by less than ``min_spread``."""
    if len(values) < 2:
        return np.zeros_like(values)
    centred = values - values.mean()
    return centred / max(float(values.std()), min_spread)
