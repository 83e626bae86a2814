"""`rerank fit`: weights learned from labelled pools, cross-validated by group, read back by `score`."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import BENCH

from rerank import Candidate, ConfigError, Request, Reranker
from rerank.cli import main
from rerank.fit import (
    FITTERS, MeasuredPool, PoolSet, fit_file, fit_pairwise_logistic, fit_profile, group_folds, group_of, held_out_choices,
    measure_pools, measuring_reranker, read_labelled,
)
from rerank.profiles import PROFILES
from rerank.registry import make_scorer


def labelled_slice(name: str, path: Path, count: int, *, skip: int = 0) -> list[dict[str, Any]]:
    """Lines ``skip`` to ``skip + count`` of a dev file, labels kept, written to ``path``."""
    with open(BENCH / f"{name}-dev.jsonl", encoding="utf-8") as f:
        lines = [f.readline() for _ in range(skip + count)][skip:]
    path.write_text("".join(lines), encoding="utf-8")
    return [json.loads(line) for line in lines]


def run(*args: Any) -> Any:
    return CliRunner().invoke(main, [str(a) for a in args])


def walk(value: Any) -> list[str]:
    """Every key of every mapping nested in ``value``."""
    if isinstance(value, dict):
        return list(value) + [k for v in value.values() for k in walk(v)]
    if isinstance(value, (list, tuple)):
        return [k for v in value for k in walk(v)]
    return []


@pytest.fixture(scope="module")
def alpaca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 48 alpaca_eval pools (chat profile), labels kept."""
    path = tmp_path_factory.mktemp("fit") / "alpaca.jsonl"
    labelled_slice("alpaca_eval", path, 48)
    return path


@pytest.fixture(scope="module")
def alpaca_measured(alpaca: Path) -> list:
    with open(alpaca, "rb") as f:
        reading = read_labelled(f)
    # bm25 is not in the chat profile: measured as `rerank fit --scorer bm25` would.
    measured, errors = measure_pools(measuring_reranker(extra_scorers=["bm25"]), reading.pools)
    assert not errors and len(measured) == 48
    return measured


class Recording(Reranker):
    """A real reranker that also keeps what ``measure`` was given."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.seen: list[tuple[Any, Any]] = []

    def measure(self, request, candidates):
        self.seen.append((request, candidates))
        return super().measure(request, candidates)


@pytest.mark.slow
def test_labels_and_source_models_never_reach_measure(tmp_path: Path) -> None:
    path = tmp_path / "bfcl.jsonl"
    lines = labelled_slice("bfcl", path, 6)
    assert all("label" in c and "source_model" in c for line in lines for c in line["candidates"])
    spy = Recording()
    with open(path, "rb") as f:
        fitted = fit_file(f, reranker=spy, folds=3, quiet=True)
    assert len(spy.seen) == 6 and fitted.fits[0].profile == "tools"
    keys = set(walk([list(args) for args in spy.seen]))
    assert "label" not in keys and "source_model" not in keys and "label_kind" not in keys
    assert {"query", "tools", "content", "tool_calls"} <= keys
    # What it measured is the pool as `rerank score` sees it.
    first = lines[0]
    plain = Reranker().measure(first, [{"content": c.get("content"), "tool_calls": c.get("tool_calls")}
                                       for c in first["candidates"]])
    assert {k: list(v) for k, v in spy.measure(*spy.seen[0]).raw.items()} == {k: list(v) for k, v in plain.raw.items()}


@pytest.mark.slow
def test_picks_are_what_combine_picks_gates_included(tmp_path: Path) -> None:
    # bfcl pools: the tools validator rejects some candidates, so gates decide some picks.
    path = tmp_path / "bfcl.jsonl"
    labelled_slice("bfcl", path, 30, skip=100)
    with open(path, "rb") as f:
        reading = read_labelled(f)
    reranker = measuring_reranker()
    measured, _ = measure_pools(reranker, reading.pools)
    assert any(not all(c.passed for cs in m.signals.checks for c in cs) for m in measured)
    names = list(PROFILES["tools"].weights)
    data = PoolSet.build(measured, names)
    rng = np.random.default_rng(7)
    for weights in [PROFILES["tools"].weights, *({n: float(v) for n, v in zip(names, rng.random(len(names)))} for _ in range(5))]:
        expected = [reranker.combine(m.signals, weights=weights).best_index for m in measured]
        assert list(data.picks(data.vector(weights))) == expected


@pytest.mark.slow
def test_fit_puts_weight_on_the_signal_that_predicts_the_labels(alpaca_measured: list) -> None:
    # On alpaca_eval, longer, more thorough answers win the judge's vote: coverage predicts the
    # label; relevance to the query alone does not (see benchmarks/README.md).
    data = PoolSet.build(alpaca_measured, ["coverage", "relevance"])
    only = {name: data.chosen(data.vector({name: 1.0})).mean() for name in data.scorers}
    assert only["coverage"] > only["relevance"]
    for fitter in FITTERS.values():
        w = dict(zip(data.scorers, fitter(data, data.vector({"coverage": 1.0, "relevance": 1.0}))))
        assert w["coverage"] == 1.0 and w["relevance"] < 1.0
    # Reversing the labels makes the other signal the useful one.
    flipped = PoolSet(data.scorers, data.x, data.eligible, -data.labels, data.sizes, data.groups)
    w = dict(zip(data.scorers, fit_pairwise_logistic(flipped, data.vector({}))))
    assert w["coverage"] < 1.0 and w["relevance"] == 1.0


def test_held_out_folds_never_share_a_group(tmp_path: Path) -> None:
    # humaneval: five pools per problem (HumanEval/100#0 .. #4), grouped by sample_of.
    path = tmp_path / "humaneval.jsonl"
    labelled_slice("humaneval", path, 40)
    with open(path, "rb") as f:
        pools = read_labelled(f).pools
    groups = [p.group for p in pools]
    assert len(set(groups)) == 8 and all(g == p.id.rsplit("#", 1)[0] for g, p in zip(groups, pools))
    for k in (2, 3, 5, 8):
        folds = group_folds(groups, k)
        assert set(folds) == set(range(k))
        fold_of_group = {}
        for group, fold in zip(groups, folds):
            assert fold_of_group.setdefault(group, fold) == fold
        sizes = Counter(folds).values()
        assert max(sizes) - min(sizes) <= 5
    with pytest.raises(ConfigError, match="cannot make 9 folds of 8 groups"):
        group_folds(groups, 9)


@pytest.mark.slow
def test_fitters_only_ever_see_whole_groups(alpaca_measured: list) -> None:
    # Give the 48 pools 12 groups of 4 (as if 4 samples per prompt) and watch what each fit trains on.
    data = PoolSet.build(alpaca_measured, list(PROFILES["chat"].weights))
    grouped = PoolSet(data.scorers, data.x, data.eligible, data.labels, data.sizes,
                      tuple(f"prompt-{i // 4}" for i in range(len(data))))
    trained_on: list[Counter] = []

    def watching(train: PoolSet, start: np.ndarray) -> np.ndarray:
        trained_on.append(Counter(train.groups))
        return FITTERS["pairwise-logistic"](train, start)

    chosen = held_out_choices(grouped, watching, grouped.vector(PROFILES["chat"].weights),
                              group_folds(grouped.groups, 5))
    assert len(trained_on) == 5 and chosen.shape == (48,)
    for seen in trained_on:
        assert set(seen.values()) == {4}  # a group is all in training, or all held out
        assert len(seen) < 12


def test_group_rules() -> None:
    assert group_of({"id": "HumanEval/3#1", "sample_of": "HumanEval/3"}) == "HumanEval/3"
    assert group_of({"id": "a/b#2", "source": "crawl-7"}) == "crawl-7"
    assert group_of({"id": "HumanEval/3#1"}) == "HumanEval/3"
    assert group_of({"id": "chat/2024/17"}) == "chat/2024"
    assert group_of({"id": "plain"}) == "plain"
    assert group_of({"id": "x/1", "user": "ann", "sample_of": "x"}, "user") == "ann"
    assert group_of({"id": "x/1", "sample_of": "x"}, "user") != group_of({"id": "x/2", "sample_of": "x"}, "user")


def test_profile_weights_replace_the_defaults_of_their_profile_only() -> None:
    reranker = Reranker(profile_weights={"chat": {"relevance": 1.0, "coverage": 0.0, "bm25": 0.5}})
    _, weighted, _ = reranker.plan(Request("What is the capital of France?"))
    assert {s.name: w for s, w in weighted} == {"relevance": 1.0, "bm25": 0.5}
    _, grounded, _ = reranker.plan(Request("Summarise.", context="Paris is the capital of France."))
    assert {s.name: w for s, w in grounded} == dict(PROFILES["grounded"].weights)
    override = Reranker(profile_weights={"chat": {"relevance": 1.0}}, weights={"relevance": 0.2, "coverage": 1.0})
    _, weighted, _ = override.plan(Request("What is the capital of France?"))
    assert {s.name: w for s, w in weighted} == {"relevance": 0.2, "coverage": 1.0}
    with pytest.raises(ConfigError, match="unknown profile 'chatty'"):
        Reranker(profile_weights={"chatty": {"relevance": 1.0}})
    with pytest.raises(ConfigError, match="'nonsense'"):
        Reranker(profile_weights={"chat": {"nonsense": 1.0}})
    with pytest.raises(ConfigError, match="finite number"):
        Reranker(profile_weights={"tools": {"relevance": float("inf")}})


@pytest.mark.slow
def test_fit_writes_weights_that_score_reads_back(alpaca: Path, alpaca_measured: list, tmp_path: Path) -> None:
    out = tmp_path / "weights.json"
    result = run("fit", alpaca, "-o", out, "--folds", "4", "--scorer", "bm25", "-q")
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    report = document["report"]["profiles"]["chat"]
    assert report["pools"] == 48 and report["folds"] == 4 and "chat: 48 pools" in result.stdout
    assert report["scorers"] == [*PROFILES["chat"].weights, "bm25"]
    assert report["default_weights"] == PROFILES["chat"].weights
    held = report["held_out"]
    assert held["random"]["gain"] == 0 and held["oracle"]["gain"] == 1
    assert set(held) == {"random", "default", "oracle", *FITTERS}
    # The run's own decision, checked against its numbers: written only when it beat the defaults.
    best = report["method"]
    assert held[best]["mean_label"] == max(held[name]["mean_label"] for name in FITTERS)
    assert ("chat" in document["profiles"]) == (held[best]["mean_label"] > held["default"]["mean_label"])
    # Whatever was written, `score --weights` now picks what those weights pick.
    weights = document["profiles"].get("chat", PROFILES["chat"].weights)
    data = PoolSet.build(alpaca_measured, list(weights))
    scored = run("score", alpaca, "--weights", out, "-q")
    picks = [json.loads(line)["best_index"] for line in scored.stdout.splitlines()]
    assert picks == list(data.picks(data.vector(weights)))


@pytest.mark.slow
def test_a_signal_that_predicts_the_labels_gets_the_weight_and_score_follows_it(
        alpaca: Path, alpaca_measured: list, tmp_path: Path) -> None:
    # A user who rewards answers that reuse the query's words: each label is the candidate's
    # BM25 score against the query (the real scorer, on the content alone). bm25 is not in the
    # chat profile; `--scorer bm25` offers it to the fit.
    bm25 = make_scorer("bm25")
    pools = [json.loads(line) for line in alpaca.read_text().splitlines()]
    for pool in pools:
        texts = [Candidate(content=c["content"]) for c in pool["candidates"]]
        for candidate, score in zip(pool["candidates"], bm25.score(Request(pool["query"]), texts)):
            candidate["label"] = score
    path = tmp_path / "likes-query-words.jsonl"
    path.write_text("".join(json.dumps(pool) + "\n" for pool in pools))
    out = tmp_path / "weights.json"
    result = run("fit", path, "-o", out, "--scorer", "bm25", "--folds", "4", "-q")
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    weights = document["profiles"]["chat"]
    assert weights["bm25"] == 1.0 and all(w < 0.5 for name, w in weights.items() if name != "bm25")
    held = document["report"]["profiles"]["chat"]["held_out"]
    method = document["report"]["profiles"]["chat"]["method"]
    assert held[method]["gain"] > held["default"]["gain"] + 0.5
    assert "fitted weights:" in result.stdout and "bm25=1" in result.stdout
    # `score --weights` now ranks chat requests with the fitted weights, and picks better.
    scored = run("score", alpaca, "--weights", out, "-q")
    assert scored.exit_code == 0, scored.output
    picks = [json.loads(line)["best_index"] for line in scored.stdout.splitlines()]
    data = PoolSet.build(alpaca_measured, list(weights))
    assert picks == list(data.picks(data.vector(weights)))
    default = data.picks(data.vector(PROFILES["chat"].weights))
    labels = [[c["label"] for c in pool["candidates"]] for pool in pools]
    assert np.mean([l[i] for l, i in zip(labels, picks)]) > np.mean([l[i] for l, i in zip(labels, default)])


@pytest.mark.slow
def test_a_profile_weights_file_changes_the_picks_of_score(alpaca: Path, alpaca_measured: list, tmp_path: Path) -> None:
    data = PoolSet.build(alpaca_measured, ["relevance", "coverage"])
    only_relevance = data.picks(data.vector({"relevance": 1.0}))
    default = run("score", alpaca, "-q")
    path = tmp_path / "relevance.json"
    only = {**{name: 0 for name in PROFILES["chat"].weights}, "relevance": 1.0}
    path.write_text(json.dumps({"profiles": {"chat": only}, "report": {"note": "hand-written"}}))
    scored = run("score", alpaca, "--weights", path, "-q")
    picks = [json.loads(line)["best_index"] for line in scored.stdout.splitlines()]
    assert picks == list(only_relevance)
    assert picks != [json.loads(line)["best_index"] for line in default.stdout.splitlines()]
    assert all(json.loads(line)["weights"] == {"relevance": 1.0} for line in scored.stdout.splitlines())
    flat = tmp_path / "flat.json"
    flat.write_text(json.dumps(only))
    assert run("score", alpaca, "--weights", flat, "-q").stdout == scored.stdout


@pytest.mark.slow
def test_a_single_group_cannot_be_held_out_so_the_defaults_stay(alpaca: Path, tmp_path: Path) -> None:
    out = tmp_path / "weights.json"
    result = run("fit", alpaca, "-o", out, "--group-by", "dataset", "-q")  # every pool: the same dataset
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    assert document["profiles"] == {}
    assert "cannot hold any out" in document["report"]["profiles"]["chat"]["note"]
    assert "cannot hold any out" in result.stdout


@pytest.mark.slow
def test_bad_lines_and_unlabelled_pools_are_counted_and_skipped(alpaca: Path, tmp_path: Path) -> None:
    good = alpaca.read_text().splitlines()[:12]
    unlabelled = json.loads(good[0]) | {"id": "no-labels"}
    unlabelled["candidates"] = [{"content": c["content"]} for c in unlabelled["candidates"]]
    partial = json.loads(good[1]) | {"id": "partial"}
    partial["candidates"][0].pop("label")
    wordy = json.loads(good[2]) | {"id": "wordy"}
    wordy["candidates"][0]["label"] = "good"
    rows = [*good, "{not json", json.dumps(unlabelled), json.dumps(partial), json.dumps(wordy),
            json.dumps({"id": "empty", "query": "q", "candidates": []})]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(rows) + "\n")
    with open(path, "rb") as f:
        reading = read_labelled(f)
    assert len(reading.pools) == 12 and reading.unlabelled == ["line 14 (id 'no-labels')"]
    assert [e.split(":")[0] for e in reading.errors] == [
        "line 13 is not valid JSON", "line 15 (id 'partial')", "line 16 (id 'wordy')", "line 17 (id 'empty')"]
    assert "1 of 8 candidates have" not in reading.errors[1] and "7 of 8 candidates have a label" in reading.errors[1]
    assert "label must be a finite number" in reading.errors[2]
    result = run("fit", path, "-o", tmp_path / "w.json", "-q", "--folds", "3")
    assert result.exit_code == 0, result.output
    assert "12 pools used, 1 without labels (skipped), 4 errors (skipped)" in result.stdout
    assert "skipped line 15 (id 'partial')" in result.stderr
    assert len(json.loads((tmp_path / "w.json").read_text())["report"]["errors"]) == 4


def test_no_usable_pool_and_bad_options_are_usage_errors(alpaca: Path, tmp_path: Path) -> None:
    unlabelled = tmp_path / "unlabelled.jsonl"
    unlabelled.write_text(json.dumps({"id": "a", "query": "q", "candidates": ["x", "y"]}) + "\n{oops\n")
    out = tmp_path / "w.json"
    result = run("fit", unlabelled, "-o", out, "-q")
    assert result.exit_code == 2 and "no usable labelled pool in 2 lines (1 without labels, 1 errors)" in result.output
    assert not out.exists()
    assert run("fit", alpaca, "-o", out, "--folds", "1").exit_code == 2
    assert "nonsense" in run("fit", alpaca, "-o", out, "--scorer", "nonsense").output
    assert run("fit", alpaca).exit_code == 2  # -o is required
    for bad, message in [({"profiles": {"chat": {"relevance": "high"}}}, "profiles"),
                         ({"profiles": ["chat"]}, "profiles"),
                         ({"profiles": {"chatty": {"relevance": 1}}}, "unknown profile"),
                         ({"profiles": {"chat": {"nonsense": 1}}}, "nonsense")]:
        path = tmp_path / "bad.json"
        path.write_text(json.dumps(bad))
        result = run("score", alpaca, "--weights", path, "-q")
        assert result.exit_code == 2 and message in result.output, (bad, result.output)


@pytest.mark.slow
def test_labels_that_never_differ_leave_nothing_to_learn(alpaca_measured: list) -> None:
    thumbs_up = [MeasuredPool(dataclasses.replace(m.pool, labels=(1.0,) * len(m.pool.labels)), m.signals)
                 for m in alpaca_measured]
    fitted = fit_profile("chat", thumbs_up)
    assert fitted.weights is None and fitted.held_out == {} and "nothing to learn" in fitted.note
    assert fit_profile("chat", alpaca_measured[:12], folds=3).held_out["default"].gain is not None

