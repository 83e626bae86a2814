"""Smoke tests: every benchmark script runs end to end on a tiny real input and reports sane numbers.

Speeds are never asserted (machines are noisy); the tests check that each script prints its
tables and writes JSON whose numbers are consistent with the labelled input.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import BENCH, REPO
from test_embeddings import static_cache  # noqa: F401 - the fixture: static vectors distilled once

from rerank import Request
from rerank.profiles import PROFILES, choose_profile
from rerank.registry import scorer_class

pytestmark = pytest.mark.slow  # benchmark smoke tests: each runs a benchmark script end to end

SCRIPTS = REPO / "benchmarks"


def run_script(name: str, *args: str | Path, timeout: float = 240) -> str:
    """Run ``benchmarks/NAME`` with this interpreter; its stdout, after checking it exited 0."""
    done = subprocess.run([sys.executable, str(SCRIPTS / name), *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO)
    assert done.returncode == 0, f"{name} exited {done.returncode}:\n{done.stderr[-3000:]}"
    return done.stdout


def copy_pools(source: str, target: Path, count: int, *, skip: int = 0) -> list[dict]:
    """``count`` pools of a labelled dev file after the first ``skip``, copied to ``target`` (labels kept)."""
    with open(BENCH / f"{source}-dev.jsonl", encoding="utf-8") as f:
        lines = [f.readline() for _ in range(skip + count)][skip:]
    target.write_text("".join(lines), encoding="utf-8")
    return [json.loads(line) for line in lines]


@pytest.fixture(scope="module")
def small_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 20 alpaca_eval pools: enough texts for the speed and middleware scripts."""
    path = tmp_path_factory.mktemp("source") / "alpaca_eval-dev.jsonl"
    copy_pools("alpaca_eval", path, 20)
    return path


def test_quality_tables_and_numbers_agree_with_the_labels(tmp_path: Path) -> None:
    # humaneval from its sixth pool: a candidate of HumanEval/100#1 keeps the execution scorer busy for long.
    files = {name: copy_pools(name, tmp_path / f"{name}-dev.jsonl", 2, skip=5 if name == "humaneval" else 0)
             for name in ("faithbench", "bfcl", "humaneval")}
    out = tmp_path / "quality.json"
    stdout = run_script("quality.py", *(tmp_path / f"{n}-dev.jsonl" for n in files), "--json", out, "-q")

    for heading in ("faithbench-dev.jsonl — validators: none", "bfcl-dev.jsonl — validators: none",
                    "humaneval-dev.jsonl — validators: python", "humaneval-dev.jsonl — validators: python-doctest"):
        assert f"### {heading}" in stdout
    for row in ("| **default** |", "| random |", "| first |", "| longest |", "| consensus |", "| oracle |",
                "| gate only: tools |", "| without gate tools |", "| gate only: python-doctest |"):
        assert row in stdout

    assert "### Summary" in stdout and "| humaneval-dev.jsonl | python-doctest | 2 |" in stdout
    report = json.loads(out.read_text())
    assert report["benchmark"] == "quality" and report["machine"]["cores"] >= 1
    runs = report["runs"]
    assert [(r["file"], r["validators"]) for r in runs] == [
        ("faithbench-dev.jsonl", []), ("bfcl-dev.jsonl", []),
        ("humaneval-dev.jsonl", ["python"]), ("humaneval-dev.jsonl", ["python-doctest"]),
    ]
    for run in runs:
        assert run["error"] is None and run["pools_scored"] == 2
        labels = [[c["label"] for c in pool["candidates"]] for pool in files[run["file"].split("-dev")[0]]]
        random = sum(sum(l) / len(l) for l in labels) / len(labels)
        oracle = sum(max(l) for l in labels) / len(labels)
        worst = sum(min(l) for l in labels) / len(labels)
        rows = {r["selector"]: r for r in run["rows"]}
        assert rows["random"]["mean_label"] == pytest.approx(random)
        assert rows["oracle"]["mean_label"] == pytest.approx(oracle)
        assert run["facts"]["random"] == pytest.approx(random) and run["facts"]["oracle"] == pytest.approx(oracle)
        first = sum(l[0] for l in labels) / len(labels)
        assert rows["first"]["mean_label"] == pytest.approx(first)
        for row in run["rows"]:
            assert worst - 1e-9 <= row["mean_label"] <= oracle + 1e-9, row
            if oracle > random:
                expected = (row["mean_label"] - random) / (oracle - random)
                assert row["gain"] == pytest.approx(expected)
        for scorer in run["facts"]["scorers"]:
            assert f"| only {scorer} |" in stdout and f"| without {scorer} |" in stdout
    grounded = runs[0]["facts"]
    assert grounded["profiles"] == {"grounded": 2} and grounded["gates"] == []
    assert set(grounded["scorers"]) == set(PROFILES["grounded"].weights)
    assert runs[1]["facts"]["profiles"] == {"tools": 2} and runs[1]["facts"]["gates"] == ["tools"]
    assert runs[3]["facts"]["gates"] == ["python-doctest"]


def test_quality_validator_override_and_limit(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # In-process, to spare a second model load: the subprocess test above covers the script's start.
    monkeypatch.syspath_prepend(str(SCRIPTS))
    import quality

    source = tmp_path / "humaneval-dev.jsonl"
    (pool, *_) = copy_pools("humaneval", source, 3)
    profile = choose_profile(Request.coerce({"query": pool["query"]})).name
    out = tmp_path / "q.json"
    assert quality.main([str(source), "--validator", "none", "--limit", "1", "--json", str(out), "-q"]) == 0
    stdout = capsys.readouterr().out
    assert "### humaneval-dev.jsonl — validators: none" in stdout and "python-doctest" not in stdout
    (run,) = json.loads(out.read_text())["runs"]
    assert run["validators"] == [] and run["pools"] == 1 and run["facts"]["profiles"] == {profile: 1}
    assert quality.main([str(source), "--validator", "no-such-validator", "--json", str(out), "-q"]) == 1
    assert "not run: UnknownNameError" in capsys.readouterr().out


@pytest.mark.timeout(2400)  # the static_cache fixture may distil first (over 15 min on a very busy machine)
def test_speed_tables_and_numbers(tmp_path: Path, small_source: Path, static_cache: Path) -> None:
    out = tmp_path / "speed.json"
    quality = tmp_path / "quality"
    quality.mkdir()
    for backend, gain in (("torch", 0.5), ("onnx", 0.49), ("static", 0.47)):
        (quality / f"quality-{backend}.json").write_text(json.dumps({"runs": [
            {"file": "f-dev.jsonl", "validators": [], "rows": [{"selector": "default", "gain": gain}]}]}))
    stdout = run_script("speed.py", "--source", small_source, "--sizes", "2,8", "--pools", "1",
                        "--throughput-pools", "2", "--cold-runs", "1", "--quality-dir", quality, "--signal-pools", "1",
                        "--middleware-calls", "1", "--json", out, "-q", timeout=900)
    assert "### Reranker latency per pool" in stdout
    for backend in ("torch", "onnx", "static"):
        assert f"| {backend} | 2 | 1 |" in stdout and f"| {backend} | 8 | 1 |" in stdout
    assert "cold start, one pool" in stdout and "pools/s" in stdout and "peak RSS" in stdout
    assert "| f-dev.jsonl [none] | +0.500 | +0.490 | +0.470 |" in stdout
    assert "| bfcl | tools | static |" in stdout and "| humaneval | code | torch |" in stdout
    assert "| gain within 0.02 of torch on every dev file | static | worst gap +0.030 over the 1 file(s) both backends have | not met |" in stdout
    assert "| gain within 0.02 of torch on every dev file | onnx (default) | worst gap +0.010 over the 1 file(s) both backends have | met |" in stdout
    assert "| a tools pool never imports torch | onnx (default) | torch not imported | met |" in stdout
    assert "### Middleware: wrapped call (native n)" in stdout and "wall − direct ≤ 1.2 × scoring" in stdout

    report = json.loads(out.read_text())
    assert report["backends"] == ["torch", "onnx", "static"]
    assert [(row["backend"], row["size"]) for row in report["latency"]] == [
        ("torch", 2), ("onnx", 2), ("static", 2), ("torch", 8), ("onnx", 8), ("static", 8)]
    for row in report["latency"]:
        assert 0 < row["p50_ms"] <= row["p95_ms"] and row["encode_p50_ms"] > 0 and row["ratio_p50"] > 0
        used = {name for name in PROFILES["chat"].weights if row["size"] >= scorer_class(name).min_candidates}
        assert set(row["shares"]) == used | {"other"}
        assert set(row["scorer_ms"]) == used
        assert sum(row["shares"].values()) == pytest.approx(1.0, abs=1e-6)
    for backend in ("torch", "onnx", "static"):
        cli, api = report["cli"][backend], report["api"][backend]
        assert cli["throughput_pools"] == 2 and len(cli["cold_start_runs_s"]) == 1
        assert cli["throughput_pools_per_s"] > 0 and cli["throughput_peak_rss_mb"] > 50
        assert api["pools"] == 2 and api["pools_per_s"] > 0 and api["warmed_pools_per_s"] > 0
    signals = {(row["file"], row["backend"]): row for row in report["signals"]}
    assert signals[("faithbench", "torch")]["profile"] == "grounded"
    assert {"grounding", "bm25-grounding"} <= set(signals[("faithbench", "static")]["signal_ms"])
    assert "python" in signals[("humaneval", "torch")]["signal_ms"]
    assert report["quality"] == {"torch": {"f-dev.jsonl [none]": 0.5}, "onnx": {"f-dev.jsonl [none]": 0.49},
                                 "static": {"f-dev.jsonl [none]": 0.47}}
    assert report["tools_pool_imports_torch"] is False and report["default_backend"] == "onnx"
    for backend in ("torch", "onnx", "static"):
        middleware = report["middleware"][backend]
        assert middleware["n"] == 8 and len(middleware["times_s"]["scoring"]) == 1
        assert middleware["wrapped_s"] > middleware["scoring_s"] > 0 and middleware["direct_s"] >= 0.2


def test_middleware_table_and_numbers(tmp_path: Path, small_source: Path) -> None:
    out = tmp_path / "middleware.json"
    stdout = run_script("middleware.py", "--source", small_source, "--latencies", "0.05", "--sizes", "2",
                        "--repeats", "1", "--json", out, "-q")
    assert "| 0.05 s | 2 |" in stdout and "wrapped, fan-out" in stdout

    (row,) = json.loads(out.read_text())["rows"]
    assert row["latency_s"] == 0.05 and row["n"] == 2
    for key in ("direct_s", "sequential_s", "wrapped_native_s", "wrapped_fan_out_s"):
        assert row[key] > 0 and row["times_s"]
    assert row["native_vs_direct"] == pytest.approx(row["wrapped_native_s"] / row["direct_s"])
    assert row["fan_out_vs_sequential"] == pytest.approx(row["wrapped_fan_out_s"] / row["sequential_s"])


def test_quality_adaptive_replays_each_rule_round_by_round(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(SCRIPTS))
    import quality

    def pool(answers: list[str]) -> str:
        return json.dumps({"id": "-".join(answers), "query": "What is the capital of France? One word.",
                           "candidates": [{"content": a, "label": float(a.lower() == "paris")} for a in answers]})

    source = tmp_path / "capitals-dev.jsonl"
    # unanimous from the start; then one whose first two disagree and whose third sides with the first
    source.write_text(pool(["Paris", "paris", "PARIS", "Paris.", "Lyon", "Nice", "Lille", "Metz"]) + "\n"
                      + pool(["Paris", "Lyon", "paris", "Nice", "Lille", "Metz", "Brest", "Nantes"]) + "\n")
    out = tmp_path / "q.json"
    assert quality.main([str(source), "--adaptive", "--rule", "majority,round", "--rule", "majority,step",
                         "--rule", "confident,step", "--json", str(out), "-q"]) == 0
    assert "### Adaptive N" in capsys.readouterr().out
    (run,) = json.loads(out.read_text())["runs"]
    replayed = {(a["settle"], a["top_up"], a["min_n"]): a for a in run["adaptive"]}
    assert len(replayed) == 6
    # majority, round: 2 and 8 candidates (1 and 2 rounds); majority, step: 2 and 3 (1 and 2 rounds)
    assert (replayed["majority", "round", 2]["mean_used"], replayed["majority", "round", 2]["mean_rounds"]) == (5, 1.5)
    assert (replayed["majority", "step", 2]["mean_used"], replayed["majority", "step", 2]["mean_rounds"]) == (2.5, 1.5)
    # confident, step: the unanimous pool stops at 4 (3 rounds: 2, 1, 1); the other never reaches 0.95 (7 rounds)
    confident = replayed["confident", "step", 2]
    assert (confident["mean_used"], confident["mean_rounds"], confident["most_rounds"]) == (6, 5.0, 7)
    assert confident["stopped_early"] == 0.5
    for a in run["adaptive"]:
        assert a["full_size"] == 8 and a["mean_label"] == 1.0 and a["gain"] == a["full_gain"] == 1.0


def test_quality_adaptive_floor_stops_at_the_first_two_that_agree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(SCRIPTS))
    import quality

    answers = ["Paris", "Lyon", "Nice", "paris", "Lille", "Metz", "Brest", "Nantes"]
    source = tmp_path / "capitals-dev.jsonl"
    source.write_text(json.dumps({"id": "one", "query": "What is the capital of France? One word.",
                                  "candidates": [{"content": a, "label": float(a.lower() == "paris")}
                                                 for a in answers]}) + "\n")
    out = tmp_path / "q.json"
    assert quality.main([str(source), "--adaptive", "--rule", "majority,step", "--rule", "earliest,step",
                         "--json", str(out), "-q"]) == 0
    (run,) = json.loads(out.read_text())["runs"]
    replayed = {(a["settle"], a["top_up"], a["min_n"]): a for a in run["adaptive"]}
    # the fourth answer is the first to agree with another (2 of 4): the floor stops there, the
    # majority rule never sees more than half agree and buys all eight
    assert replayed["earliest", "step", 2]["mean_used"] == 4 and replayed["earliest", "step", 3]["mean_used"] == 4
    assert replayed["majority", "step", 2]["mean_used"] == 8
    assert replayed["earliest", "step", 2]["gain"] == 1.0
