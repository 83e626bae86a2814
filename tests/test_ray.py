"""rerank.ray on a local Ray cluster: RerankStage and `rerank score --ray` against `rerank score`,
GenerateStage and `rerank generate --ray` against `rerank generate`, on rerank.testing.

One cluster serves the whole module: 2 CPUs, no dashboard, listening on 127.0.0.1 only, shut
down after. Where Ray is not installed or cannot start, every test here is skipped, the reason
naming why; with RERANK_REQUIRE_RAY=1 (set by .ci/run) that is a failure instead.

Results are compared exactly except for float noise: scores to 1e-5, and so the order among
candidates of a pool whose scores tie to 1e-5 (bfcl pools hold near-identical calls). Embeddings
differ in their last bits with the torch thread count (an actor holding one CPU computes with
one thread, as Ray sets OMP_NUM_THREADS; the plain commands here run with one too) and with
which texts are encoded together (a batch's, where the plain command encodes about 1024 at a
time), which moves a rounded score by 1e-6 now and then: the plain command itself does that on
the same pools in another order.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from itertools import combinations
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator

import pytest
from click.testing import CliRunner

from conftest import read_pools
from rerank.cli import main
from rerank.testing import serve

pytestmark = pytest.mark.slow  # each test starts or uses a local Ray cluster

# Read when Ray is imported: a local cluster then binds 127.0.0.1, not the machine's address.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

CHAT = "/v1/chat/completions"


def unavailable(reason: str) -> None:
    if os.environ.get("RERANK_REQUIRE_RAY"):
        pytest.fail(f"{reason} (RERANK_REQUIRE_RAY is set, so this is an error)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """A local Ray cluster for this module, and rerank.ray."""
    try:
        import ray
        import ray.data
    except ImportError as exc:
        unavailable(f"Ray is not installed ({exc}); pip install -e '.[ray]' to run these tests")
    try:
        ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    except Exception as exc:  # noqa: BLE001 - whatever stops Ray here is the reason to report
        unavailable(f"Ray cannot start a local cluster here: {type(exc).__name__}: {exc}")
    try:
        assert [node["NodeManagerAddress"] for node in ray.nodes()] == ["127.0.0.1"]
        import rerank.ray

        yield SimpleNamespace(ray=ray, stages=rerank.ray)
    finally:
        ray.shutdown()


def same(a: Any, b: Any) -> bool:
    """Equal, numbers to within 1e-5 (see the module's docstring)."""
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and abs(a - b) <= 1e-5
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return bool(a == b)


def same_result(got: dict[str, Any], want: dict[str, Any]) -> bool:
    """The same `rerank score` result, up to float noise (see the module's docstring): equal but for
    the ranks, and every two candidates not tied (gates and scores to 1e-5) in the same order."""
    def unranked(result: dict[str, Any]) -> dict[str, Any]:
        return {**result, "candidates": [{k: v for k, v in c.items() if k != "rank"} for c in result["candidates"]]}

    if "candidates" not in want:
        return bool(got == want)
    if "candidates" not in got or not same(unranked(got), unranked(want)):
        return False
    ours, theirs = got["candidates"], want["candidates"]
    for i, j in combinations(range(len(theirs)), 2):
        gates = [[c["passed"] for c in theirs[k]["checks"]] for k in (i, j)]
        if gates[0] != gates[1] or abs(theirs[i]["score"] - theirs[j]["score"]) > 1e-5:
            if (ours[i]["rank"] < ours[j]["rank"]) != (theirs[i]["rank"] < theirs[j]["rank"]):
                return False
    return True


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


def one_thread() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    return {**env, "OMP_NUM_THREADS": "1"}


def plain(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rerank.cli", *args, "-q"], capture_output=True, text=True,
                          env=one_thread(), timeout=280)


def on_ray(*args: str) -> Any:
    """A command run in this process with --ray: it uses the module's cluster."""
    return CliRunner().invoke(main, [*args, "-q", "--ray"], catch_exceptions=False)


# --- rerank score ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """20 alpaca_eval and 20 bfcl dev pools with unusable lines among them, and what the plain
    `rerank score` writes for them."""
    tmp = tmp_path_factory.mktemp("score")
    pools = read_pools("alpaca_eval", 20) + read_pools("bfcl", 20)
    rows: list[Any] = [*pools[:5], "{not json", *pools[5:25], {"id": "no-candidates", "query": "Hi?"}, "",
                       {"id": "empty", "query": "Hi?", "candidates": []}, *pools[25:]]
    source = write_jsonl(tmp / "pools.jsonl", rows)
    done = plain("score", str(source), "-o", str(tmp / "plain.jsonl"))
    assert done.returncode == 1, done.stderr  # 1: some lines are errors
    return SimpleNamespace(pools=pools, source=source, tmp=tmp, text=(tmp / "plain.jsonl").read_text(),
                           by_id={r["id"]: r for r in map(json.loads, (tmp / "plain.jsonl").read_text().splitlines())
                                  if "error" not in r})


def pool_row(pool: dict[str, Any]) -> dict[str, Any]:
    """A pool as Dataset columns: candidates as a list of structs, tools as JSON text."""
    return {"id": pool["id"], "query": pool["query"], "context": pool["context"],
            "tools": json.dumps(pool["tools"]) if pool.get("tools") else None, "candidates": pool["candidates"]}


def without_nulls(result: dict[str, Any]) -> dict[str, Any]:
    """A `rerank score` result whose best candidate lacks its null keys: an Arrow struct cannot
    tell a null field from a missing one, so RerankStage leaves them out."""
    best = result["best"]
    return {**result, "best": {k: v for k, v in best.items() if v is not None} if isinstance(best, dict) else best}


def as_output(row: dict[str, Any]) -> dict[str, Any]:
    """A RerankStage output row as the object `rerank score` writes for a good pool."""
    return {"id": row["id"], "best_index": row["best_index"], "best": json.loads(row["best"]),
            "profile": row["profile"], "all_failed": row["all_failed"], "weights": json.loads(row["weights"]),
            "candidates": json.loads(row["candidates"])}


def test_rerank_stage_over_a_dataset_gives_the_rankings_of_rerank_score(cluster, scored):
    ray, stages = cluster.ray, cluster.stages
    dataset = ray.data.from_items([{**pool_row(p), "source": "bench"} for p in scored.pools])
    rows = dataset.map_batches(stages.RerankStage, compute=ray.data.ActorPoolStrategy(size=2),
                               batch_size=8).take_all()

    assert sorted(r["id"] for r in rows) == sorted(p["id"] for p in scored.pools)
    for row in rows:
        assert row["error"] is None, row["error"]
        assert same_result(as_output(row), without_nulls(scored.by_id[row["id"]])), row["id"]
        assert row["source"] == "bench"  # other columns ride along
        assert "query" not in row and "tools" not in row
    assert {r["profile"] for r in rows} == {"chat", "tools"}


def test_score_on_ray_writes_the_lines_of_rerank_score(cluster, scored):
    output = scored.tmp / "ray.jsonl"
    result = on_ray("score", str(scored.source), "-o", str(output), "--actors", "2", "--batch-size", "6")

    assert result.exit_code == 1, result.output
    lines = [json.loads(line) for line in scored.text.splitlines()]
    got = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(got) == len(lines)
    assert all(same_result(ours, theirs) for ours, theirs in zip(got, lines))
    assert [(r["line"], r["error"]) for r in lines if "error" in r] == [
        (6, "line 6 is not valid JSON: Expecting property name enclosed in double quotes at column 2"),
        (27, 'missing "candidates": give a list of strings or assistant messages'),
        (28, "line 28 is empty"),
        (29, "candidates is empty: give at least one candidate"),
    ]
    assert len(lines) == len(scored.pools) + 4


def test_score_on_ray_of_a_file_without_errors_exits_0(cluster, scored):
    # A batch with no error holds an all-null "error" column, which NumPy turns into NaN.
    source, output = write_jsonl(scored.tmp / "clean.jsonl", scored.pools[18:23]), scored.tmp / "clean-out.jsonl"
    result = on_ray("score", str(source), "-o", str(output))

    assert result.exit_code == 0, result.output
    got = [json.loads(line) for line in output.read_text().splitlines()]
    assert [r["id"] for r in got] == [p["id"] for p in scored.pools[18:23]]
    assert all(same_result(r, scored.by_id[r["id"]]) for r in got)


def test_parquet_rows_that_cannot_be_ranked_become_error_rows_beside_the_others(cluster, scored):
    import pyarrow as pa
    import pyarrow.parquet as pq

    good = [scored.pools[0], scored.pools[21], scored.pools[1]]
    rows = [pool_row(good[0]), {"id": "no-candidates", "query": "Hi?"}, pool_row(good[1]),
            {**pool_row(good[1]), "id": "bad-tools", "tools": "[{not json"},
            {"id": "not-a-pool", "query": "Hi?", "candidates": []}, pool_row(good[2])]
    source, output = scored.tmp / "mixed.parquet", scored.tmp / "mixed-out.parquet"
    pq.write_table(pa.Table.from_pylist(rows), source)
    result = on_ray("score", str(source), "-o", str(output), "--actors", "2", "--batch-size", "2")

    assert result.exit_code == 1, result.output
    out = pq.read_table(output).to_pylist()
    assert [r["id"] for r in out] == [r["id"] for r in rows]
    for i, pool in zip((0, 2, 5), good):
        assert same_result(as_output(out[i]), without_nulls(scored.by_id[pool["id"]])), pool["id"]
    assert [out[i]["error"] for i in (0, 2, 5)] == [None] * 3
    assert out[1]["error"] == 'missing "candidates": give a list of strings or assistant messages'
    assert out[3]["error"] == "tools must be a list of objects in OpenAI's tools format"
    assert out[4]["error"] == "candidates is empty: give at least one candidate"
    assert all(out[i]["best_index"] is None and out[i]["candidates"] is None for i in (1, 3, 4))


# --- rerank generate ---------------------------------------------------------------------------


def batch_line(custom_id: str, pool: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "test-model", "messages": [{"role": "user", "content": pool["query"]}]}
    if pool.get("tools"):
        body["tools"] = pool["tools"]
    return {"custom_id": custom_id, "method": "POST", "url": CHAT, "body": body}


def picks(lines: list[dict[str, Any]]) -> dict[str, tuple[Any, ...]]:
    """custom_id -> (best index, chosen content, chosen tool calls) of every answered line."""
    out = {}
    for line in lines:
        if line["error"] is None:
            body = line["response"]["body"]
            message = body["choices"][0]["message"]
            out[line["custom_id"]] = (body["rerank"]["best_index"], message["content"], message.get("tool_calls"))
    return out


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """3 bfcl and 3 short alpaca_eval pools served by rerank.testing (8 candidates, n=8: every
    request gets the whole pool), unusable lines among the requests, and `rerank generate`'s answers."""
    tmp = tmp_path_factory.mktemp("generate")
    alpaca = sorted(read_pools("alpaca_eval", 12), key=lambda p: len(json.dumps(p)))[:3]
    pools = read_pools("bfcl", 3) + alpaca
    requests = [batch_line(p["id"], p) for p in pools]
    rows: list[Any] = [*requests[:3], "{not json",
                       {"custom_id": "no-body", "method": "POST", "url": CHAT},
                       requests[1], "", *requests[3:]]
    source = write_jsonl(tmp / "requests.jsonl", rows)
    with serve(pools=write_jsonl(tmp / "pools.jsonl", pools)) as server:
        done = plain("generate", str(source), "-o", str(tmp / "plain.jsonl"), "--base-url", server.base_url,
                     "-n", "8")
        assert done.returncode == 1, done.stderr
        yield SimpleNamespace(server=server, requests=requests, source=source, tmp=tmp,
                              lines=[json.loads(line) for line in (tmp / "plain.jsonl").read_text().splitlines()])


def test_generate_stage_picks_what_rerank_generate_picks(cluster, generated):
    ray, stages = cluster.ray, cluster.stages
    rows = [{**r, "body": json.dumps(r["body"])} for r in generated.requests]
    out = ray.data.from_items(rows).map_batches(
        stages.GenerateStage, fn_constructor_kwargs={"base_url": generated.server.base_url, "n": 8, "concurrency": 2},
        compute=ray.data.ActorPoolStrategy(size=1), batch_size=4).take_all()

    assert sorted(r["custom_id"] for r in out) == sorted(r["custom_id"] for r in generated.requests)
    assert all(r["error"] is None for r in out)
    lines = [{**r, "response": json.loads(r["response"]), "error": None} for r in out]
    assert picks(lines) == picks(generated.lines)
    assert len(picks(lines)) == 6


def test_generate_on_ray_answers_in_input_order_with_error_lines_in_place(cluster, generated):
    output = generated.tmp / "ray.jsonl"
    result = on_ray("generate", str(generated.source), "-o", str(output), "--base-url", generated.server.base_url,
                    "-n", "8", "-j", "2", "--actors", "2", "--batch-size", "3")

    assert result.exit_code == 1, result.output
    lines = [json.loads(line) for line in output.read_text().splitlines()]
    assert picks(lines) == picks(generated.lines)
    order = [line["custom_id"] if line["error"] is None else (line["error"]["code"], line["error"].get("line"))
             for line in lines]
    ids = [r["custom_id"] for r in generated.requests]
    assert order == [*ids[:3], ("invalid_line", 4), ("missing_body", 5), ("invalid_line", 6), *ids[3:]]
    assert "repeats custom_id" in lines[5]["error"]["message"]
    plain_errors = sorted((e["error"]["line"], e["error"]["code"]) for e in generated.lines if e["error"])
    assert plain_errors == [(4, "invalid_line"), (5, "missing_body"), (6, "duplicate_custom_id")]


def test_rerank_ray_imports_the_ray_package_not_itself(cluster):
    assert cluster.stages.ray.__name__ == "ray"
    assert Path(cluster.stages.ray.__file__).parent.name == "ray"
    assert Path(cluster.stages.ray.__file__) != Path(cluster.stages.__file__)
