"""`rerank fit`: learn each profile's scorer weights from labelled pools, and keep them only if
they beat the defaults on pools they were not fitted on.

A labelled pool is a `rerank score` input line whose candidates carry a ``label`` (higher is
better: thumbs up/down as 1/0, a rating, a pass/fail). Every pool is measured once
(``Reranker.measure``, which sees the request and the candidates' content and tool calls only);
the labels meet the measurements afterwards. Pools are grouped by profile; for each profile two
fitters learn non-negative weights over its scorers (plus any extra scorers asked for):

- ``pairwise-logistic``: L2-regularised logistic regression on the differences of the
  pool-normalised signals of every better/worse pair of gate-passing candidates of a pool;
- ``coordinate-ascent``: from the default weights, one scorer at a time over a small grid of
  values, keeping a change only when it raises the mean label of the chosen candidates.

Both are judged by k-fold cross-validation whose folds never split a group (pools sampled from
the same prompt, see :func:`group_of`). The better one is fitted on every pool of the profile
and written only when its held-out mean label beats the defaults'.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Callable, Mapping, Sequence

import numpy as np

from .errors import ConfigError, InputError, RerankError
from .jsonl import read_lines
from .profiles import PROFILES
from .progress import Progress
from .reranker import Reranker, Signals, gate_rank, normalise
from .warm import warmed

REQUEST_FIELDS = ("query", "context", "tools", "schema")
"""The fields of a line that measuring reads; everything else (labels above all) stays out."""

CANDIDATE_FIELDS = ("content", "tool_calls")
"""The fields of a candidate that measuring reads."""

GRID = (0.0, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
"""Values coordinate ascent tries for each weight (weights only matter relative to each other)."""

L2 = 0.01
"""Strength of the pairwise logistic regression's L2 penalty (signals are pool-normalised)."""

MAX_PAIRS = 256
"""Most preference pairs one pool gives the logistic fit (a pool of 24 candidates has 276)."""

MIN_GAIN = 0.001
"""How much held-out gain (a fraction of the way from random to oracle) fitted weights must add
to the defaults' before they replace them: a float-level tie never does."""


# Reading labelled pools: labels are split off here and never travel with the request.

@dataclass(frozen=True)
class LabelledPool:
    """One pool: what measuring may read (``request``, ``candidates``) and, apart, the ``labels``."""

    id: str
    group: str
    request: dict[str, Any]
    candidates: list[dict[str, Any]]
    labels: tuple[float, ...]
    """One per candidate, higher is better: read only to fit and to score the fit."""


@dataclass
class LabelledFile:
    """The usable pools of a file and what was skipped, with why."""

    pools: list[LabelledPool] = field(default_factory=list)
    lines: int = 0
    unlabelled: list[str] = field(default_factory=list)
    """Lines whose candidates carry no label at all."""
    errors: list[str] = field(default_factory=list)
    """Lines that cannot be used: bad JSON, no candidates, a bad or missing label, a failed measure."""
    ungrouped: int = 0
    """Pools without the ``group_by`` field, each put in a group of its own."""


def group_of(line: Mapping[str, Any], group_by: str | None = None) -> str:
    """The group of a pool: pools of one group are never split between fitting and testing.

    With ``group_by``, that field's value (a pool without it is a group of its own). Otherwise
    ``sample_of`` if present, else ``source``, else the id up to its last ``/`` or ``#``
    (``HumanEval/100#2`` → ``HumanEval/100``).
    """
    ident = str(line.get("id", ""))
    for name in (group_by,) if group_by else ("sample_of", "source"):
        value = line.get(name)
        if value is not None:
            return value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    if group_by:
        return f"\0{ident}"  # its own group, apart from any real value of the field
    cut = max(ident.rfind("/"), ident.rfind("#"))
    return ident[:cut] if cut > 0 else ident


def _label(value: Any, index: int) -> float:
    if isinstance(value, bool):
        return float(value)
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"candidate {index}: label must be a finite number (higher is better), got {value!r}")
    return float(value)


def read_labelled(stream: BinaryIO, *, group_by: str | None = None) -> LabelledFile:
    """Every line of a labelled JSONL stream, as pools or as reasons it was skipped."""
    result = LabelledFile()
    for line in read_lines(stream):
        result.lines += 1
        if line.error:
            result.errors.append(line.error)
            continue
        value = line.value or {}
        name = f"line {line.number}" + (f" (id {line.id!r})" if line.id is not None else "")
        candidates = value.get("candidates")
        if not isinstance(candidates, list) or not candidates:
            result.errors.append(f"{name}: needs a non-empty list of candidates")
            continue
        labelled = [isinstance(c, Mapping) and c.get("label") is not None for c in candidates]
        if not any(labelled):
            result.unlabelled.append(name)
            continue
        if not all(labelled):
            result.errors.append(f"{name}: {sum(labelled)} of {len(candidates)} candidates have a label; "
                                 "label every candidate or none")
            continue
        try:
            labels = tuple(_label(c["label"], i) for i, c in enumerate(candidates))
        except ValueError as exc:
            result.errors.append(f"{name}: {exc}")
            continue
        if group_by and value.get(group_by) is None:
            result.ungrouped += 1
        ident = str(line.id if line.id is not None else f"line {line.number}")
        result.pools.append(LabelledPool(
            id=ident,
            group=group_of({**value, "id": ident}, group_by),
            request={k: value[k] for k in REQUEST_FIELDS if value.get(k) is not None},
            candidates=[{k: c.get(k) for k in CANDIDATE_FIELDS} for c in candidates],
            labels=labels,
        ))
    return result


# Measuring: once per pool, labels out of reach.

@dataclass(frozen=True)
class MeasuredPool:
    """A pool's measurements beside its labels."""

    pool: LabelledPool
    signals: Signals


def measuring_reranker(*, validators: Sequence[str] = (), extra_scorers: Sequence[str] = (),
                       model: str | None = None, embedding_backend: str | None = None) -> Reranker:
    """The reranker that measures pools for fitting: every profile's scorers plus ``extra_scorers``."""
    return Reranker(validators=list(validators), weights={name: 1.0 for name in extra_scorers}, model=model,
                    embedding_backend=embedding_backend)


def measure_pools(reranker: Reranker, pools: Sequence[LabelledPool], *,
                  progress: Progress | None = None) -> tuple[list[MeasuredPool], list[str]]:
    """Measure every pool once; a pool that cannot be measured is returned as an error message."""
    measured: list[MeasuredPool] = []
    errors: list[str] = []
    for pool in warmed(reranker, pools, lambda p: (p.request, p.candidates)):
        error = None
        try:
            measured.append(MeasuredPool(pool, reranker.measure(pool.request, pool.candidates)))
        except RerankError as exc:
            error = f"id {pool.id!r}: {exc}"
        except Exception as exc:  # noqa: BLE001 - one bad pool must not stop the run
            error = f"id {pool.id!r}: {type(exc).__name__}: {exc}"
        if error:
            errors.append(error)
        if progress is not None:
            progress.advance(failed=error is not None)
    return measured, errors


# A profile's pools as arrays, and the choices a weighting makes on them.

@dataclass(frozen=True)
class PoolSet:
    """Measured pools of one profile as padded arrays: signals, gates and labels.

    ``x[p, i, k]`` is scorer ``k``'s pool-normalised score of candidate ``i`` of pool ``p`` (0 for
    a scorer that did not apply), exactly what ``Reranker.combine`` weighs; ``eligible`` marks the
    candidates the gates let through (every check passed, or, when none passes everything, the
    ones passing most); padding is never eligible.
    """

    scorers: tuple[str, ...]
    x: np.ndarray
    eligible: np.ndarray
    labels: np.ndarray
    sizes: np.ndarray
    groups: tuple[str, ...]

    @classmethod
    def build(cls, measured: Sequence[MeasuredPool], scorers: Sequence[str]) -> "PoolSet":
        """Arrays of ``measured`` over ``scorers``."""
        width = max((len(m.signals.pool) for m in measured), default=0)
        x = np.zeros((len(measured), width, len(scorers)))
        eligible = np.zeros((len(measured), width), dtype=bool)
        labels = np.zeros((len(measured), width))
        for p, m in enumerate(measured):
            s, n = m.signals, len(m.signals.pool)
            for k, name in enumerate(scorers):
                if name in s.raw:
                    x[p, :n, k] = normalise(np.asarray(s.raw[name], dtype=float), s.min_spread[name])
            ranks = [gate_rank(cs) for cs in s.checks]
            eligible[p, :n] = [rank == max(ranks) for rank in ranks]
            labels[p, :n] = m.pool.labels
        return cls(tuple(scorers), x, eligible, labels, np.array([len(m.signals.pool) for m in measured]),
                   tuple(m.pool.group for m in measured))

    def __len__(self) -> int:
        return len(self.sizes)

    def take(self, index: np.ndarray) -> "PoolSet":
        """The pools at ``index`` (an index array or a boolean mask)."""
        return PoolSet(self.scorers, self.x[index], self.eligible[index], self.labels[index], self.sizes[index],
                       tuple(np.asarray(self.groups, dtype=object)[index]))

    def vector(self, weights: Mapping[str, float]) -> np.ndarray:
        """``weights`` as a vector over ``scorers`` (a scorer left out weighs 0)."""
        return np.array([float(weights.get(name, 0.0)) for name in self.scorers])

    def picks(self, w: np.ndarray) -> np.ndarray:
        """The index each pool's ranking puts first under weights ``w``, as ``combine`` would."""
        total = np.round(self.x @ w, 6)  # combine's tie rounding
        total[~self.eligible] = -np.inf
        first: np.ndarray = np.argmax(total, axis=1)  # the first maximum: ties go to the lowest index
        return first

    def chosen(self, w: np.ndarray) -> np.ndarray:
        """The label of the candidate each pool picks under weights ``w``."""
        labels: np.ndarray = self.labels[np.arange(len(self)), self.picks(w)]
        return labels

    def random(self) -> np.ndarray:
        """Each pool's mean label: what a random pick scores on average."""
        mask = np.arange(self.labels.shape[1]) < self.sizes[:, None]
        mean: np.ndarray = (self.labels * mask).sum(axis=1) / self.sizes
        return mean

    def oracle(self) -> np.ndarray:
        """Each pool's best label."""
        mask = np.arange(self.labels.shape[1]) < self.sizes[:, None]
        best: np.ndarray = np.where(mask, self.labels, -np.inf).max(axis=1)
        return best


# Fitters: a PoolSet and the default weights in, non-negative weights out (largest 1).

Fitter = Callable[[PoolSet, np.ndarray], np.ndarray]


def tidy(w: np.ndarray) -> np.ndarray:
    """Non-negative weights scaled so the largest is 1, to 3 decimals (all zero stays zero)."""
    w = np.clip(np.asarray(w, dtype=float), 0.0, None)
    top = w.max(initial=0.0)
    return np.round(w / top, 3) if top > 0 else np.zeros_like(w)


def preference_pairs(data: PoolSet, *, per_pool: int = MAX_PAIRS, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Signal differences of (better, worse) pairs of eligible candidates, and pair weights.

    Within a pool, pairs weigh by their label gap, scaled so the pool's pairs add up to its label
    range (the most a choice there can gain); a pool with more than ``per_pool`` pairs gives a
    seeded sample of that many.
    """
    rng = np.random.default_rng(seed)
    diffs, weights = [], []
    for p in range(len(data)):
        idx = np.flatnonzero(data.eligible[p])
        labels = data.labels[p, idx]
        gap = labels[:, None] - labels[None, :]
        better, worse = np.nonzero(gap > 0)
        if not len(better):
            continue
        if len(better) > per_pool:
            keep = rng.choice(len(better), size=per_pool, replace=False)
            better, worse = better[keep], worse[keep]
        pair_gap = gap[better, worse]
        diffs.append(data.x[p, idx[better]] - data.x[p, idx[worse]])
        weights.append(pair_gap / pair_gap.sum() * (labels.max() - labels.min()))
    if not diffs:
        return np.zeros((0, len(data.scorers))), np.zeros(0)
    return np.vstack(diffs), np.concatenate(weights)


def fit_pairwise_logistic(data: PoolSet, start: np.ndarray, *, l2: float = L2, steps: int = 2000) -> np.ndarray:
    """Non-negative weights minimising the weighted logistic loss of every preference pair + L2.

    Projected gradient descent with step ``1/L`` (``L`` bounds the loss's curvature), so every
    step lowers the loss; ``start`` is unused (the loss is convex).
    """
    diffs, pair_weights = preference_pairs(data)
    if not len(diffs):
        return tidy(start)
    pair_weights = pair_weights / pair_weights.sum()
    curvature = 0.25 * float(np.linalg.eigvalsh((diffs * pair_weights[:, None]).T @ diffs).max()) + 2 * l2
    w = np.zeros(diffs.shape[1])
    for _ in range(steps):
        margin = diffs @ w
        grad = -diffs.T @ (pair_weights * _sigmoid(-margin)) + 2 * l2 * w
        new = np.clip(w - grad / curvature, 0.0, None)
        if np.abs(new - w).max() < 1e-7:
            w = new
            break
        w = new
    return tidy(w)


def fit_coordinate_ascent(data: PoolSet, start: np.ndarray, *, grid: Sequence[float] = GRID,
                          rounds: int = 4) -> np.ndarray:
    """From ``start``, set one weight at a time to the grid value that most raises the mean chosen
    label; stop after ``rounds`` passes or a pass that changes nothing. Ties keep the current value."""
    w = tidy(start) if start.max(initial=0) > 0 else np.asarray(start, dtype=float)
    best = data.chosen(w).mean()
    for _ in range(rounds):
        changed = False
        for k in range(len(w)):
            for value in grid:
                trial = w.copy()
                trial[k] = value
                score = data.chosen(trial).mean()
                if score > best + 1e-12:
                    best, w, changed = score, trial, True
        if not changed:
            break
    return tidy(w)


FITTERS: dict[str, Fitter] = {
    "pairwise-logistic": fit_pairwise_logistic,
    "coordinate-ascent": fit_coordinate_ascent,
}


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


# Cross-validation that never splits a group.

def group_folds(groups: Sequence[str], k: int, *, seed: int = 0) -> np.ndarray:
    """The fold (0 to ``k``-1) of each pool: folds of about equal size, every group whole in one.

    Groups go, largest first (equal sizes in a seeded shuffle), to the fold holding fewest pools.
    """
    sizes = Counter(groups)
    if not 2 <= k <= len(sizes):
        raise ConfigError(f"cannot make {k} folds of {len(sizes)} groups: give between 2 and {len(sizes)} folds")
    names = sorted(sizes)
    shuffled = [names[i] for i in np.random.default_rng(seed).permutation(len(names))]
    load = np.zeros(k, dtype=int)
    fold_of: dict[str, int] = {}
    for name in sorted(shuffled, key=lambda g: -sizes[g]):
        fold_of[name] = int(np.argmin(load))
        load[fold_of[name]] += sizes[name]
    return np.array([fold_of[g] for g in groups])


def held_out_choices(data: PoolSet, fitter: Fitter, start: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """The label each pool's choice gets under weights fitted on the other folds."""
    chosen = np.zeros(len(data))
    for fold in np.unique(folds):
        test = folds == fold
        chosen[test] = data.take(test).chosen(fitter(data.take(~test), start))
    return chosen


@dataclass(frozen=True)
class Outcome:
    """Mean label of the choices and normalised gain ``(chosen - random) / (oracle - random)``."""

    mean_label: float
    gain: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON shape, unrounded: the decision compares these very numbers."""
        return {"mean_label": self.mean_label, "gain": self.gain}


def outcome(chosen: np.ndarray, random: np.ndarray, oracle: np.ndarray) -> Outcome:
    """Score choices against the pools' random and oracle references."""
    span = float(oracle.mean() - random.mean())
    mean = float(chosen.mean())
    return Outcome(mean, (mean - float(random.mean())) / span if span > 0 else None)


@dataclass
class ProfileFit:
    """What fitting one profile found: held-out results of each weighting and the decision."""

    profile: str
    pools: int
    groups: int
    folds: int
    scorers: tuple[str, ...]
    defaults: dict[str, float]
    held_out: dict[str, Outcome] = field(default_factory=dict)
    """``random``, ``default``, each fitter, ``oracle``; empty when there was nothing to test."""
    method: str | None = None
    """The fitter that did best held-out."""
    weights: dict[str, float] | None = None
    """Weights fitted on every pool by ``method``: set only when they beat the defaults held-out."""
    margin_ci95: float | None = None
    """Half-width of a 95% interval of the gain over the defaults (over pools)."""
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON shape, for the weights file's report."""
        return {
            "pools": self.pools, "groups": self.groups, "folds": self.folds, "scorers": list(self.scorers),
            "default_weights": self.defaults, "held_out": {k: v.to_dict() for k, v in self.held_out.items()},
            "method": self.method, "fitted_weights": self.weights,
            "gain_over_default_ci95": None if self.margin_ci95 is None else round(self.margin_ci95, 4),
            "decision": "fitted" if self.weights is not None else "kept defaults", "note": self.note,
        }


def fit_profile(profile: str, measured: Sequence[MeasuredPool], *, folds: int = 5, seed: int = 0,
                fitters: Mapping[str, Fitter] = FITTERS) -> ProfileFit:
    """Cross-validate every fitter on one profile's pools, and fit the best on all of them when it
    beats the profile's defaults held-out."""
    defaults = dict(PROFILES[profile].weights)
    names = list(dict.fromkeys([*defaults, *(n for m in measured for n in m.signals.raw)]))
    data = PoolSet.build(measured, names)
    groups = len(set(data.groups))
    result = ProfileFit(profile, len(data), groups, min(folds, groups), tuple(names), defaults)
    start = data.vector(defaults)
    random, oracle = data.random(), data.oracle()
    if groups < 2:
        result.folds = 0
        result.note = f"only {groups} group of pools: cannot hold any out; kept the defaults (see --group-by)"
        return result
    if not (oracle > random).any():
        result.note = "no pool's labels differ: nothing to learn; kept the defaults"
        return result
    fold_of = group_folds(data.groups, result.folds, seed=seed)
    default_chosen = data.chosen(start)
    chosen = {name: held_out_choices(data, fitter, start, fold_of) for name, fitter in fitters.items()}
    result.held_out = {"random": outcome(random, random, oracle), "default": outcome(default_chosen, random, oracle),
                       **{name: outcome(c, random, oracle) for name, c in chosen.items()},
                       "oracle": outcome(oracle, random, oracle)}
    best = max(chosen, key=lambda name: chosen[name].mean())  # the first of equals: dict order
    result.method = best
    diff = chosen[best] - default_chosen
    span = float(oracle.mean() - random.mean())
    if len(diff) > 1:
        result.margin_ci95 = 1.96 * float(diff.std(ddof=1)) / math.sqrt(len(diff)) / span
    if chosen[best].mean() - default_chosen.mean() > MIN_GAIN * span:
        result.weights = dict(zip(names, map(float, fitters[best](data, start))))
        result.note = f"{best} beat the defaults on held-out folds; wrote its weights, fitted on all pools"
        if result.margin_ci95 is not None and chosen[best].mean() - default_chosen.mean() < result.margin_ci95 * span:
            result.note += " (the gain is within its 95% interval: more labelled pools would make it surer)"
    else:
        result.note = f"the best fit ({best}) did not beat the defaults on held-out folds; kept the defaults"
    return result


def fit_profiles(measured: Sequence[MeasuredPool], *, folds: int = 5, seed: int = 0) -> list[ProfileFit]:
    """``fit_profile`` for every profile the pools use, most pools first."""
    by_profile: dict[str, list[MeasuredPool]] = {}
    for m in measured:
        by_profile.setdefault(m.signals.profile, []).append(m)
    ordered = sorted(by_profile.items(), key=lambda item: -len(item[1]))
    return [fit_profile(name, pools, folds=folds, seed=seed) for name, pools in ordered]


# The run as a whole: read, measure, fit, and what gets written and shown.

@dataclass
class FitRun:
    """A whole `rerank fit` run: the file read, the fits, and the settings that produced them."""

    source: str
    reading: LabelledFile
    fits: list[ProfileFit]
    settings: dict[str, Any]

    def document(self) -> dict[str, Any]:
        """The weights file: ``{"profiles": {profile: {scorer: weight}}, "report": {...}}``.

        Only profiles whose fitted weights beat the defaults appear under ``profiles``; the report
        says why each other profile kept its defaults.
        """
        r = self.reading
        return {
            "profiles": {f.profile: f.weights for f in self.fits if f.weights is not None},
            "report": {
                "input": self.source, **self.settings,
                "lines": r.lines, "pools_used": sum(f.pools for f in self.fits),
                "unlabelled": len(r.unlabelled), "errors": r.errors,
                "profiles": {f.profile: f.to_dict() for f in self.fits},
            },
        }

    def table(self) -> str:
        """A readable per-profile summary of the held-out results."""
        r = self.reading
        used = sum(f.pools for f in self.fits)
        lines = [f"{self.source}: {r.lines} lines, {used} pools used, {len(r.unlabelled)} without labels "
                 f"(skipped), {len(r.errors)} errors (skipped); {self.settings['folds']} folds by group"
                 + (f" ({self.settings['group_by']})" if self.settings.get("group_by") else "")]
        if r.ungrouped:
            lines.append(f"{r.ungrouped} pools lack {self.settings['group_by']!r}: each is a group of its own")
        for f in self.fits:
            lines += ["", f"{f.profile}: {f.pools} pools in {f.groups} groups, {f.folds} folds; "
                          f"scorers {', '.join(f.scorers)}"]
            if f.held_out:
                lines.append(f"  {'held-out':<20} {'mean label':>10} {'gain':>8}")
                for name, o in f.held_out.items():
                    gain = "" if o.gain is None else f"{o.gain:+.3f}"
                    lines.append(f"  {name:<20} {o.mean_label:>10.3f} {gain:>8}")
            lines.append(f"  default weights: {_weights_text(f.defaults)}")
            if f.weights is not None and f.method is not None:
                ci = "" if f.margin_ci95 is None else f" ± {f.margin_ci95:.3f}"
                margin = (f.held_out[f.method].gain or 0.0) - (f.held_out["default"].gain or 0.0)
                lines.append(f"  fitted weights:  {_weights_text(f.weights)}  ({f.method}, "
                             f"{margin:+.3f}{ci} gain over the defaults)")
            lines.append(f"  {f.note}")
        return "\n".join(lines) + "\n"


def _weights_text(weights: Mapping[str, float]) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in weights.items())


def fit_file(stream: BinaryIO, *, reranker: Reranker, source: str = "-", folds: int = 5,
             group_by: str | None = None, settings: Mapping[str, Any] | None = None,
             quiet: bool = False) -> FitRun:
    """Read, measure and fit a labelled JSONL stream; raises InputError when no pool is usable."""
    reading = read_labelled(stream, group_by=group_by)
    if not reading.pools:
        raise InputError(
            f"{source}: no usable labelled pool in {reading.lines} lines ({len(reading.unlabelled)} without "
            f"labels, {len(reading.errors)} errors); each line needs candidates with a numeric \"label\""
            + (f". First error: {reading.errors[0]}" if reading.errors else ""))
    progress = Progress("fit: measuring", total=len(reading.pools), enabled=not quiet)
    measured, failures = measure_pools(reranker, reading.pools, progress=progress)
    progress.close()
    reading.errors += failures
    if not measured:
        raise InputError(f"{source}: no pool could be measured. First error: {failures[0]}")
    fits = fit_profiles(measured, folds=folds)
    return FitRun(source, reading, fits, {"folds": folds, "group_by": group_by, **(settings or {})})

