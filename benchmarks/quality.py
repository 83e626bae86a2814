"""Selection quality on real labelled outputs: the default reranker beside baselines and ablations.

    python benchmarks/quality.py [POOLS.jsonl ...] [--validator NAME] [--limit N] [--json PATH]

For each file (default: every ``*.jsonl`` in ``../shared/bench``) and each validator set a user
would switch on for its task, every pool is measured once (``Reranker.measure``); every row
below then re-ranks those measurements with other weights or gates (``Reranker.combine``):

- ``default``: the reranker as it ships (the request's profile, its weights and gates);
- baselines: ``random`` (the pool's mean label), ``first``, ``longest``, ``shortest``,
  ``consensus`` (the candidate most similar to the others) and ``oracle`` (the best label);
- ``only X``: one scorer alone, without gates; ``gate only: V``: one validator alone, ties to
  the first candidate;
- ``without X``: the default minus one scorer or one gate (ablation).

With ``--adaptive``, each pool is also replayed as adaptive N would have bought it: its
candidates arrive in pool order, ``min_n`` (2, then 3) first; when those agree by the task's
notion and pass every gate (:func:`rerank.agreement.agreement`, the middleware's own test) the
replay stops and ranks them alone, otherwise it tops up and looks again. Each rule (``--rule
SETTLE,TOP_UP``; by default those of ``ADAPTIVE_RULES``) is replayed on the same measurements,
and so is ``earliest``: stop as soon as any two candidates agree, the floor no rule goes under.
Per file: the gain, the mean candidates used and the rounds run, beside the full pool's gain.

Selection reads each pool's request and candidates (content, tool calls) only; labels meet the
choices afterwards, in ``score_rows`` and ``score_adaptive``. Tables go to stdout (markdown), progress to stderr, and
the numbers to ``--json`` (default ``benchmarks/results/quality.json``).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from common import (
    RESULTS_DIR, Pool, argument_parser, cpu_seconds, default_pool_files, describe_machine, machine, markdown_table,
    read_pools, write_json,
)

from rerank import Candidate, Request, Reranker
from rerank.adaptive import TOP_UPS, top_up_size
from rerank.agreement import SETTLE_RULES, Agreement, agreement, passed_all
from rerank.embeddings import BACKENDS, DEFAULT_BACKEND
from rerank.errors import ConfigError, RerankError
from rerank.progress import Progress
from rerank.reranker import Signals
from rerank.warm import warmed

DEFAULT_VALIDATORS: dict[str, list[list[str]]] = {
    "humaneval": [["python"], ["python-doctest"]],
}
"""Validator sets a user would switch on, per task (the file name up to ``-dev``); others: none.

The tools and json-schema validators need no switch: a request's tools or schema turn them on."""


@dataclass
class Measured:
    """One pool as the reranker measured it, plus consensus measured apart when its profile lacks it."""

    signals: Signals
    consensus: Signals | None = None


@dataclass
class Run:
    """One file under one validator set: the measurements and, once scored, the table rows."""

    file: str
    validators: list[str]
    pools: int = 0
    measured: list[Measured] = field(default_factory=list)
    kept: list[Pool] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    reranker: Reranker | None = None


def task_of(path: Path) -> str:
    """The task name of a pool file: ``humaneval-dev.jsonl`` → ``humaneval``."""
    return path.name.split("-dev")[0].removesuffix(".jsonl")


def validator_sets(path: Path, override: Sequence[str] | None) -> list[list[str]]:
    """The validator sets to run a file with: ``override`` for every file, else the task's default."""
    if override is not None:
        return [[name for name in override if name != "none"]]
    return DEFAULT_VALIDATORS.get(task_of(path), [[]])


def measure_run(run: Run, pools: Sequence[Pool], *, quiet: bool, embedding_backend: str | None = None) -> None:
    """Measure every pool once with the default reranker and ``run.validators``."""
    start = time.perf_counter()
    label = f"{run.file} [{', '.join(run.validators) or 'no validators'}]"
    try:
        reranker = run.reranker = Reranker(validators=run.validators, embedding_backend=embedding_backend)
        consensus_only = Reranker(scorers=["consensus"], auto_validators=False, embedding_backend=embedding_backend)
    except (ConfigError, ImportError) as exc:
        run.error = f"{type(exc).__name__}: {exc}"
        return
    progress = Progress(label, total=len(pools), enabled=not quiet)
    for pool in warmed(reranker, pools, lambda p: (p.request, p.candidates)):
        try:
            signals = reranker.measure(pool.request, pool.candidates)
            extra = None
            if "consensus" not in signals.raw:
                extra = consensus_only.measure(pool.request, pool.candidates)
        except (ConfigError, ImportError) as exc:
            # A validator or scorer that cannot load fails every pool alike: stop this run.
            run.error = f"{type(exc).__name__}: {exc}"
            progress.close()
            return
        except RerankError as exc:
            run.failed.append(f"{pool.id}: {exc}")
            progress.advance(failed=True)
            continue
        run.measured.append(Measured(signals, extra))
        run.kept.append(pool)
        progress.advance()
    progress.close()
    run.pools = len(pools)
    run.seconds = time.perf_counter() - start


# Selectors: each maps a measured pool to the index it picks. None of them sees labels.

Selector = Callable[[Measured], int]


def without_gates(signals: Signals) -> Signals:
    """The same measurements with every validator's verdict removed."""
    return dataclasses.replace(signals, checks=[() for _ in signals.pool])


def keep_gates(signals: Signals, keep: Callable[[str], bool]) -> Signals:
    """The same measurements with only the verdicts of validators for which ``keep(name)``."""
    return dataclasses.replace(signals, checks=[tuple(c for c in cs if keep(c.validator)) for cs in signals.checks])


def selectors(reranker: Reranker, scorers: Sequence[str], validators: Sequence[str]) -> dict[str, tuple[str, Selector]]:
    """Every row's selector, in table order, as ``name -> (kind, selector)``."""
    def pick(signals: Signals, weights: dict[str, float] | None = None) -> int:
        return reranker.combine(signals, weights=weights).best_index

    def consensus(m: Measured) -> int:
        source = m.signals if m.consensus is None else m.consensus
        return pick(without_gates(source), {"consensus": 1.0})

    def longest(m: Measured) -> int:
        lengths = text_lengths(m.signals)
        return lengths.index(max(lengths))

    def shortest(m: Measured) -> int:
        lengths = text_lengths(m.signals)
        return lengths.index(min(lengths))

    rows: dict[str, tuple[str, Selector]] = {
        "default": ("reranker", lambda m: pick(m.signals)),
        "first": ("baseline", lambda m: 0),
        "longest": ("baseline", longest),
        "shortest": ("baseline", shortest),
        "consensus": ("baseline", consensus),
    }
    for name in scorers:
        rows[f"only {name}"] = ("single", lambda m, n=name: pick(without_gates(m.signals), {n: 1.0}))
    for name in validators:
        rows[f"gate only: {name}"] = ("single", lambda m, v=name: pick(keep_gates(m.signals, lambda x: x == v), {}))
    for name in scorers:
        rows[f"without {name}"] = (
            "ablation",
            lambda m, n=name: pick(m.signals, {k: w for k, w in m.signals.weights.items() if k != n}),
        )
    for name in validators:
        rows[f"without gate {name}"] = ("ablation", lambda m, v=name: pick(keep_gates(m.signals, lambda x: x != v)))
    return rows


def text_lengths(signals: Signals) -> list[int]:
    """Each candidate's text length in characters."""
    return [len(Candidate.coerce(c).text) for c in signals.pool]


def length_ranks(signals: Signals) -> np.ndarray:
    """Each candidate's place by length within its pool: 0 the shortest, 1 the longest (ties share)."""
    lengths = np.array(text_lengths(signals), dtype=float)
    if len(lengths) < 2:
        return np.full(len(lengths), 0.5)
    below = (lengths[:, None] > lengths[None, :]).sum(axis=1)
    equal = (lengths[:, None] == lengths[None, :]).sum(axis=1) - 1
    return (below + equal / 2) / (len(lengths) - 1)


def ordered_union(groups: Sequence[Sequence[str]]) -> list[str]:
    """Every name of ``groups``, once, in order of first appearance."""
    return list(dict.fromkeys(name for group in groups for name in group))


# Adaptive N replayed: label-blind picks and the candidates each pool would have cost.

ADAPTIVE_MIN_N = (2, 3)
EARLIEST = "earliest"
"""Not a rule of the product but the floor under all of them: stop as soon as any two candidates in
hand agree and pass every gate. Every settle rule needs that much, so none can stop sooner: its
share of candidates is the least adaptive N can use on a file."""
ADAPTIVE_RULES = (("majority", "round"), ("majority", "step"), ("confident", "step"), ("confident", "double"),
                  (EARLIEST, "step"))
"""(settle, top_up) pairs replayed by default; the first is the default of ``rerank.wrap(n="auto")``."""


class Prefixes:
    """One measured pool replayed as its candidates arrive in pool order: how far its first ``k``
    agree, and what the reranker picks among them, each measured once and shared by every rule."""

    def __init__(self, reranker: Reranker, request: Request, signals: Signals) -> None:
        self.reranker, self.request, self.signals = reranker, request, signals
        self.passed = passed_all(signals.checks)
        self._agreements: dict[int, Agreement] = {}
        self._picks: dict[int, int] = {}

    @property
    def size(self) -> int:
        return len(self.signals.pool)

    def agreement(self, k: int, rule: str) -> Agreement:
        """The first ``k`` candidates' agreement (gates: the full measurement's own checks)."""
        if k not in self._agreements:
            self._agreements[k] = agreement(self.reranker, self.request, self.signals.pool[:k], self.passed[:k])
        return dataclasses.replace(self._agreements[k], rule=rule)

    def pick(self, k: int) -> int:
        """The reranker's pick among the first ``k`` candidates, measured and ranked on them alone."""
        if k not in self._picks:
            signals = self.signals if k == self.size else self.reranker.measure(self.request, self.signals.pool[:k])
            self._picks[k] = self.reranker.combine(signals).best_index
        return self._picks[k]


def prefixes_of(run: Run) -> list[Prefixes]:
    """Every measured pool of ``run``, ready to replay."""
    assert run.reranker is not None, "prefixes_of needs a measured run"
    return [Prefixes(run.reranker, Request.coerce(pool.request), m.signals) for pool, m in zip(run.kept, run.measured)]


def replay_adaptive(pools: Sequence[Prefixes], min_n: int, top_up: str = "round",
                    settle: str = "majority") -> tuple[list[int], list[int], list[int], list[str]]:
    """For every pool: the index adaptive N picks, the candidates it used, the rounds it ran, why it stopped.

    The same steps as :class:`rerank.adaptive.Rounds`: ``min_n`` first; after each round, stop if
    the pool is used up, else if the candidates in hand agree by ``settle``; otherwise top up
    (:func:`rerank.adaptive.top_up_size`). A pool that stops early is ranked on its first
    candidates alone; one that runs to its end keeps the full ranking.
    """
    picks, used, rounds, stops = [], [], [], []
    for pool in pools:
        have, ran = min(min_n, pool.size), 1
        while have < pool.size and not _settled(pool.agreement(have, settle)):
            have += top_up_size(top_up, have, pool.size)
            ran += 1
        picks.append(pool.pick(have))
        stops.append("agreed" if have < pool.size else "full pool")
        used.append(have)
        rounds.append(ran)
    return picks, used, rounds, stops


def _settled(agreement: Agreement) -> bool:
    return len(agreement.group) >= 2 if agreement.rule == EARLIEST else agreement.settled


# Metrics: the only place that reads labels.

def metric(chosen: np.ndarray, random: np.ndarray, oracle: np.ndarray) -> dict[str, float]:
    """Mean label of the choices, normalised gain, and the gain's 95% half-width over pools."""
    span = float(oracle.mean() - random.mean())
    mean = float(chosen.mean())
    gain = (mean - float(random.mean())) / span if span > 0 else float("nan")
    diff = chosen - random
    half = 1.96 * float(diff.std(ddof=1)) / np.sqrt(len(diff)) / span if len(diff) > 1 and span > 0 else None
    return {"mean_label": mean, "gain": gain if np.isfinite(gain) else None, "ci95": half}


def score_rows(run: Run) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every row of the run's table, with the random and oracle references and run facts."""
    assert run.reranker is not None, "score_rows needs a measured run"
    scorers = ordered_union([list(m.signals.weights) for m in run.measured])
    validators = ordered_union([[c.validator for c in cs] for m in run.measured for cs in m.signals.checks])
    picks = {name: (kind, [select(m) for m in run.measured])
             for name, (kind, select) in selectors(run.reranker, scorers, validators).items()}
    labels = [np.asarray(pool.labels) for pool in run.kept]
    random = np.array([l.mean() for l in labels])
    oracle = np.array([l.max() for l in labels])
    rows = [{"selector": name, "kind": kind, **metric(np.array([l[i] for l, i in zip(labels, chosen)]), random, oracle)}
            for name, (kind, chosen) in picks.items()]
    rows.insert(1, {"selector": "random", "kind": "baseline", **metric(random, random, oracle)})
    rows.insert(6, {"selector": "oracle", "kind": "baseline", **metric(oracle, random, oracle)})
    checks = [c for m in run.measured for cs in m.signals.checks for c in cs]
    candidates = sum(len(m.signals.pool) for m in run.measured)
    passing = sum(all(c.passed for c in cs) for m in run.measured for cs in m.signals.checks)
    profiles: dict[str, int] = {}
    weights: dict[str, dict[str, float]] = {}
    for m in run.measured:
        profiles[m.signals.profile] = profiles.get(m.signals.profile, 0) + 1
        weights.setdefault(m.signals.profile, dict(m.signals.weights))
    ranks = [length_ranks(m.signals) for m in run.measured]
    facts = {
        "default_length_rank": float(np.mean([r[i] for r, i in zip(ranks, picks["default"][1])])),
        "length_label_correlation": _correlation(np.concatenate(ranks), np.concatenate(labels)),
        "random": float(random.mean()),
        "oracle": float(oracle.mean()),
        "profiles": profiles,
        "weights": weights,
        "scorers": scorers,
        "gates": validators,
        "candidates": candidates,
        "candidates_passing_gates": passing if checks else None,
        "default_agrees_with_consensus": float(np.mean(
            [a == b for a, b in zip(picks["default"][1], picks["consensus"][1])])) if run.measured else None,
    }
    return rows, facts


def score_adaptive(run: Run, rows: Sequence[dict[str, Any]], rules: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """Adaptive N's gain, mean candidates and rounds for each rule (settle, top-up) and ``min_n``,
    beside the full pool's gain."""
    labels = [np.asarray(pool.labels) for pool in run.kept]
    random = np.array([l.mean() for l in labels])
    oracle = np.array([l.max() for l in labels])
    full = next(r for r in rows if r["selector"] == "default")
    sizes = np.array([len(l) for l in labels])
    pools = prefixes_of(run)
    out = []
    for settle, top_up in rules:
        for min_n in ADAPTIVE_MIN_N:
            picks, used, rounds, stops = replay_adaptive(pools, min_n, top_up, settle)
            scored = metric(np.array([l[i] for l, i in zip(labels, picks)]), random, oracle)
            kept = scored["gain"] / full["gain"] if scored["gain"] is not None and full["gain"] else None
            out.append({"settle": settle, "top_up": top_up, "min_n": min_n, **scored, "full_gain": full["gain"],
                        "kept_share": kept, "mean_used": float(np.mean(used)),
                        "used_share": float(np.mean(np.array(used) / sizes)), "full_size": float(sizes.mean()),
                        "mean_rounds": float(np.mean(rounds)), "most_rounds": int(max(rounds)),
                        "stopped_early": float(np.mean([s == "agreed" for s in stops]))})
    return out


def render_adaptive(results: Sequence[dict[str, Any]]) -> str:
    """One line per run and min_n: adaptive N's gain and candidates used beside the full pool's gain."""
    rows = []
    for result in results:
        for a in result.get("adaptive") or ():
            rows.append([result["file"], ", ".join(result["validators"]) or "none",
                         f"{a.get('settle', 'majority')}, {a['top_up']}", a["min_n"],
                         "" if a["full_gain"] is None else f"{a['full_gain']:+.3f}",
                         "" if a["gain"] is None else f"{a['gain']:+.3f}",
                         "" if a["kept_share"] is None else f"{100 * a['kept_share']:.0f}%",
                         f"{a['mean_used']:.2f} of {a['full_size']:.1f}", f"{100 * a['used_share']:.0f}%",
                         f"{100 * a['stopped_early']:.0f}%", f"{a['mean_rounds']:.2f} (max {a['most_rounds']})"])
    if not rows:
        return ""
    return ("### Adaptive N (max_n = the whole pool)\n\n" + markdown_table(
        ["file", "validators", "settle, top-up", "min_n", "full-N gain", "adaptive gain", "gain kept",
         "mean candidates", "share used", "stopped early", "rounds: mean (most)"], rows) + "\n")


def _correlation(x: np.ndarray, y: np.ndarray) -> float | None:
    if len(x) < 2 or x.std() == 0 or y.std() == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def render(result: dict[str, Any]) -> str:
    """The markdown section of one run: a heading, the facts, and the table."""
    title = f"### {result['file']} — validators: {', '.join(result['validators']) or 'none'}"
    if result.get("error"):
        return f"{title}\n\nnot run: {result['error']}\n"
    facts = result["facts"]
    profiles = ", ".join(f"{name} ({count})" for name, count in facts["profiles"].items())
    weights = "; ".join(f"{p}: " + ", ".join(f"{k}={v:g}" for k, v in w.items()) for p, w in facts["weights"].items())
    lines = [
        title, "",
        f"{result['pools_scored']} pools, {facts['candidates']} candidates, profile {profiles}; "
        f"weights {weights}; gates: {', '.join(facts['gates']) or 'none'}; measured in {result['seconds']:.0f} s.",
    ]
    if facts["candidates_passing_gates"] is not None:
        lines[-1] += f" {facts['candidates_passing_gates']}/{facts['candidates']} candidates pass every gate."
    correlation = facts.get("length_label_correlation")
    lines[-1] += (f" Length: the default's picks sit at {facts['default_length_rank']:.2f} of their pools' length order "
                  f"(0 the shortest, 1 the longest); the labels' correlation with length order is "
                  f"{'n/a' if correlation is None else f'{correlation:+.2f}'}.")
    if result["failed_pools"]:
        lines[-1] += f" {len(result['failed_pools'])} pools failed and are left out: {result['failed_pools'][0]}"
    table = markdown_table(
        ["selector", "mean label", "gain", "±95%"],
        [[r["selector"] if r["selector"] != "default" else "**default**",
          f"{r['mean_label']:.3f}", "" if r["gain"] is None else f"{r['gain']:+.3f}",
          "" if r["ci95"] is None else f"{r['ci95']:.3f}"]
         for r in result["rows"]],
    )
    return "\n".join(lines) + "\n\n" + table + "\n"


def render_summary(results: Sequence[dict[str, Any]]) -> str:
    """One line per run: the default's gain beside the best label-blind baseline and both length baselines."""
    rows = []
    for result in results:
        validators = ", ".join(result["validators"]) or "none"
        if result.get("error"):
            rows.append([result["file"], validators, result["pools"], "not run", "", "", "", "", ""])
            continue
        by_name = {r["selector"]: r for r in result["rows"]}
        default = by_name["default"]
        best = max((by_name[name] for name in BASELINES), key=lambda r: r["mean_label"])
        facts = result["facts"]
        correlation = facts.get("length_label_correlation")
        rows.append([result["file"], validators, result["pools_scored"], _gain(default), best["selector"], _gain(best),
                     _gain(by_name["longest"]), _gain(by_name["shortest"]),
                     f"{facts['default_length_rank']:.2f} / {'n/a' if correlation is None else f'{correlation:+.2f}'}"])
    return "### Summary\n\n" + markdown_table(
        ["file", "validators", "pools", "default gain", "best baseline", "its gain", "longest", "shortest",
         "pick's length rank / length-label corr."], rows) + "\n"


BASELINES = ("first", "longest", "shortest", "consensus")
"""The label-blind baselines the summary compares with (random is 0 and oracle 1 by definition)."""


def _gain(row: dict[str, Any]) -> str:
    if row["gain"] is None:
        return ""
    return f"{row['gain']:+.3f}" + ("" if row["ci95"] is None else f" ± {row['ci95']:.3f}")


def adaptive_rule(text: str) -> tuple[str, str]:
    """``--rule confident,step`` → ``("confident", "step")``."""
    settle, _, top_up = text.partition(",")
    if settle not in (*SETTLE_RULES, EARLIEST) or top_up not in TOP_UPS:
        raise argparse.ArgumentTypeError(f"expected SETTLE,TOP_UP with settle one of {', '.join(SETTLE_RULES)}, "
                                         f"{EARLIEST} (the floor under every rule) "
                                         f"and top-up one of {', '.join(TOP_UPS)}, got {text!r}")
    return settle, top_up


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argument_parser(__doc__)
    parser.add_argument("pools", nargs="*", type=Path, metavar="POOLS.jsonl",
                        help="labelled pool files (default: every *.jsonl in ../shared/bench)")
    parser.add_argument("--validator", action="append", metavar="NAME",
                        help="validators for every file instead of each task's default (repeatable; 'none' for none)")
    parser.add_argument("--limit", type=int, metavar="N", help="only the first N pools of each file")
    parser.add_argument("--embedding-backend", choices=BACKENDS, default=DEFAULT_BACKEND,
                        help="how the embedding scorers encode (default: %(default)s)")
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "quality.json", metavar="PATH",
                        help="where to write the numbers (default: %(default)s)")
    parser.add_argument("--adaptive", action="store_true",
                        help="also replay adaptive N (min_n 2 and 3) on every pool, candidates in pool order")
    parser.add_argument("--rule", action="append", metavar="SETTLE,TOP_UP", type=adaptive_rule,
                        help="with --adaptive: replay only these rules (repeatable; settle: "
                             f"{'|'.join(SETTLE_RULES)}|{EARLIEST}; top-up: {'|'.join(TOP_UPS)}; default: "
                             f"{' '.join(','.join(r) for r in ADAPTIVE_RULES)})")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; exit 1 when a run could not be measured (its error is in the table)."""
    args = parse_args(argv)
    files = args.pools or default_pool_files()
    info = machine()
    limit = f"; first {args.limit} pools per file" if args.limit else ""
    print(f"## Selection quality (embedding backend: {args.embedding_backend})\n\n{describe_machine(info)}{limit}\n")
    started = time.perf_counter()
    results = []
    for path in files:
        pools = read_pools(path, limit=args.limit)
        for validators in validator_sets(path, args.validator):
            run = Run(file=path.name, validators=validators)
            measure_run(run, pools, quiet=args.quiet, embedding_backend=args.embedding_backend)
            result: dict[str, Any] = {"file": run.file, "validators": validators, "pools": len(pools),
                                      "pools_scored": len(run.kept), "failed_pools": run.failed,
                                      "seconds": round(run.seconds, 1), "error": run.error}
            if run.error is None and run.kept:
                rows, facts = score_rows(run)
                result.update(rows=rows, facts=facts)
                if args.adaptive:
                    result["adaptive"] = score_adaptive(run, rows, args.rule or ADAPTIVE_RULES)
            elif run.error is None:
                result["error"] = "every pool failed"
            print(render(result), flush=True)
            results.append(result)
    print(render_summary(results))
    if args.adaptive:
        print(render_adaptive(results))
    total = time.perf_counter() - started
    cpu = cpu_seconds()
    print(f"Total time: {total:.0f} s wall, {cpu:.0f} s CPU (this process and its sandboxes).")
    out = write_json(args.json, {"benchmark": "quality", "machine": info, "limit": args.limit,
                                 "embedding_backend": args.embedding_backend,
                                 "seconds": round(total, 1), "cpu_seconds": round(cpu, 1), "runs": results})
    print(f"numbers written to {out}", file=sys.stderr)
    return 1 if any(r.get("error") for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
