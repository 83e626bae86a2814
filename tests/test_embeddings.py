"""Embedding backends: nothing heavy at start-up, one load per process, each text encoded once,
and the onnx export and static vectors derived from the bundled model keep its sense of similarity."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import EXAMPLES, read_pools

from rerank import ConfigError, Reranker
from rerank.backends.artifacts import CACHE_ENV, artifact, cache_dir
from rerank.cli import main
from rerank.embeddings import BACKENDS, DEFAULT_BACKEND, Embedder, bundled_model_path, get_embedder

# Distilling takes 20-60 s on an idle machine and over 15 min on a 2-core one under a load of 18;
# the fixture's first user waits for it.
pytestmark = pytest.mark.timeout(2400)

HEAVY = ("torch", "sentence_transformers", "transformers")

PARAPHRASES = [
    "The cat sat on the mat.",
    "A cat was sitting on the rug.",
    "Interest rates rose sharply after the central bank meeting.",
    "The central bank raised borrowing costs steeply.",
    "Boil the egg for six minutes for a runny yolk.",
    "Cook the egg six minutes in boiling water to keep the yolk soft.",
]


@pytest.fixture(scope="session")
def static_cache(tmp_path_factory: pytest.TempPathFactory):
    """A cache folder holding static vectors really distilled from the bundled model and the model
    really exported to int8 ONNX, once per session (one folder per session, so a module that imports
    this fixture finds them made)."""
    folder = tmp_path_factory.getbasetemp() / "rerank-cache"
    folder.mkdir(exist_ok=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(folder))
        from rerank.backends import prepare

        prepare("static", bundled_model_path())
        prepare("onnx", bundled_model_path())
        yield folder


def run_python(code: str, **env: str) -> dict:
    """Run ``code`` in a fresh interpreter (the last line it prints is JSON) and return that JSON."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", **env}, cwd=Path(__file__).parent.parent)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


LOADED = f"{{m: m in sys.modules for m in {HEAVY!r}}}"
"""A Python expression: which heavy modules the interpreter has imported."""


@pytest.mark.slow
def test_import_and_pools_without_embedding_scorers_load_no_torch():
    loaded = run_python(f"""
import json, sys
import rerank, rerank.cli
from rerank import Reranker
pools = [json.loads(line) for line in open({str(EXAMPLES)!r})]
tools = next(p for p in pools if p.get("tools"))
ranking = Reranker(embedding_backend="torch").rank(tools, tools["candidates"])
assert ranking.profile == "tools" and "char-consensus" in ranking.weights, (ranking.profile, ranking.weights)
code = [json.loads(line) for line in open("examples/code.jsonl")][0]
assert Reranker(validators=["python"]).rank(code, code["candidates"]).profile == "code"
print(json.dumps({LOADED}))
""")
    assert loaded == dict.fromkeys(HEAVY, False)


@pytest.mark.slow
def test_the_torch_backend_loads_on_the_first_encode_only():
    loaded = run_python(f"""
import json, sys
from rerank import Reranker
reranker = Reranker(embedding_backend="torch")
before = {LOADED}
reranker.rank("How long should I boil an egg?", ["Six minutes.", "Ten minutes."])
print(json.dumps([before, {LOADED}]))
""")
    assert loaded == [dict.fromkeys(HEAVY, False), dict.fromkeys(HEAVY, True)]


@pytest.mark.slow
def test_pools_with_embedding_scorers_on_static_vectors_load_no_torch(static_cache):
    loaded = run_python(f"""
import json, sys
from rerank import Reranker
pools = [json.loads(line) for line in open({str(EXAMPLES)!r})]
grounded = next(p for p in pools if p.get("context"))
ranking = Reranker(embedding_backend="static").rank(grounded, grounded["candidates"])
assert {{"grounding", "consensus", "relevance"}} <= set(ranking.weights), ranking.weights
print(json.dumps({LOADED}))
""", **{CACHE_ENV: str(static_cache)})
    assert loaded == dict.fromkeys(HEAVY, False)


@pytest.mark.slow
def test_the_default_onnx_backend_ranks_pools_with_embedding_scorers_without_torch(static_cache):
    loaded = run_python(f"""
import json, sys
from rerank import Reranker
pools = [json.loads(line) for line in open({str(EXAMPLES)!r})]
grounded = next(p for p in pools if p.get("context"))
ranking = Reranker().rank(grounded, grounded["candidates"])
assert {{"grounding", "consensus", "relevance"}} <= set(ranking.weights), ranking.weights
print(json.dumps({{**{LOADED}, "onnxruntime": "onnxruntime" in sys.modules}}))
""", **{CACHE_ENV: str(static_cache)})
    assert DEFAULT_BACKEND == "onnx"
    assert loaded == {**dict.fromkeys(HEAVY, False), "onnxruntime": True}


@pytest.mark.slow
def test_onnx_vectors_keep_the_models_sense_of_similarity_in_the_order_given(static_cache):
    onnx = Embedder(backend="onnx").encode(PARAPHRASES)
    torch_vectors = get_embedder(None, "torch").encode(PARAPHRASES)
    assert onnx.shape == (len(PARAPHRASES), 384)
    assert np.allclose(np.linalg.norm(onnx, axis=1), 1.0, atol=1e-5)
    # int8 weights: each short sentence's vector stays close to the transformer's own
    assert np.min(np.sum(onnx * torch_vectors, axis=1)) > 0.9
    similarity = onnx @ onnx.T
    for i in range(0, len(PARAPHRASES), 2):
        others = [similarity[i, j] for j in range(len(PARAPHRASES)) if j not in (i, i + 1)]
        assert similarity[i, i + 1] > max(others), (PARAPHRASES[i], similarity[i])
    # A text's vector does not depend on the texts encoded with it (int8 scales each run's
    # activations by their range: a shared batch would), and each comes back in its place.
    texts = [c["content"] for p in read_pools("alpaca_eval", limit=3) for c in p["candidates"]][:20]
    texts = texts[::2] + PARAPHRASES + texts[1::2]
    encoder = get_embedder(None, "onnx").encoder
    batched = encoder.encode(texts)
    alone = np.stack([encoder.encode([t])[0] for t in texts])
    assert np.array_equal(batched, alone)
    # Over real answers, onnx cosines rank pairs as the transformer's do.
    upper = np.triu_indices(len(texts), 1)
    torch_sim = (lambda v: (v @ v.T)[upper])(get_embedder(None, "torch").encode(texts))
    ranks = [np.argsort(np.argsort(s)) for s in (torch_sim, (batched @ batched.T)[upper])]
    assert np.corrcoef(*ranks)[0, 1] > 0.9


def test_a_damaged_onnx_export_is_a_clear_error(static_cache, tmp_path):
    from rerank.backends.onnx import OnnxEncoder, onnx_artifact

    damaged = tmp_path / "onnx"
    shutil.copytree(onnx_artifact(bundled_model_path()), damaged)
    (damaged / "model.onnx").write_bytes(b"not a model")
    with pytest.raises(ConfigError, match="cannot be read.*delete that folder and run `rerank prepare --embedding-backend onnx`"):
        OnnxEncoder(bundled_model_path(), folder=damaged)


def test_a_pooling_the_onnx_backend_cannot_reproduce_is_refused_before_exporting(tmp_path):
    from rerank.backends.onnx import _pooling

    (tmp_path / "1_Pooling").mkdir()
    config = tmp_path / "1_Pooling" / "config.json"
    config.write_text(json.dumps({"pooling_mode_cls_token": False, "pooling_mode_mean_tokens": False,
                                  "pooling_mode_max_tokens": True}))
    with pytest.raises(ConfigError, match="mean or CLS pooling only.*use --embedding-backend torch"):
        _pooling(tmp_path)
    config.write_text(json.dumps({"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}))
    assert _pooling(tmp_path) == "cls"
    assert _pooling(bundled_model_path()) == "mean"


@pytest.mark.slow
def test_static_vectors_are_unit_length_and_keep_the_models_sense_of_similarity(static_cache):
    static = Embedder(backend="static").encode(PARAPHRASES)
    assert static.shape == (len(PARAPHRASES), 256)
    assert np.allclose(np.linalg.norm(static, axis=1), 1.0, atol=1e-5)
    similarity = static @ static.T
    for i in range(0, len(PARAPHRASES), 2):
        others = [similarity[i, j] for j in range(len(PARAPHRASES)) if j not in (i, i + 1)]
        assert similarity[i, i + 1] > max(others), (PARAPHRASES[i], similarity[i])
    # Over real answers, static cosines rank pairs much as the transformer's do.
    texts = [c["content"] for p in read_pools("alpaca_eval", limit=3) for c in p["candidates"]][:20]
    upper = np.triu_indices(len(texts), 1)
    torch_sim = (lambda v: (v @ v.T)[upper])(get_embedder().encode(texts))
    static_sim = (lambda v: (v @ v.T)[upper])(Embedder(backend="static").encode(texts))
    ranks = [np.argsort(np.argsort(s)) for s in (torch_sim, static_sim)]
    assert np.corrcoef(*ranks)[0, 1] > 0.5


@pytest.mark.slow
def test_each_backend_loads_once_per_process_and_encodes_each_distinct_text_once(static_cache):
    for backend in BACKENDS:
        embedder = get_embedder(None, backend)
        assert get_embedder(backend=backend) is embedder
        encoder = embedder.encoder
        calls: list[list[str]] = []
        real = encoder.encode
        encoder.encode = lambda texts, real=real: calls.append(list(texts)) or real(texts)  # type: ignore[method-assign]
        try:
            texts = [f"{backend}: a text seen twice", f"{backend}: another", f"{backend}: a text seen twice"]
            first = embedder.encode(texts)
            again = embedder.encode(texts[:2])
        finally:
            del encoder.encode
        assert embedder.encoder is encoder
        assert calls == [texts[:2]]
        assert np.array_equal(first[0], first[2]) and np.array_equal(first[:2], again)


@pytest.mark.slow
def test_a_warmed_pool_is_ranked_without_encoding_again(static_cache):
    pools = read_pools("faithbench", limit=2)
    reranker = Reranker(embedding_backend="static")
    from rerank.warm import warm

    warm(reranker, [(p, p["candidates"]) for p in pools])
    encoder = get_embedder(None, "static").encoder
    calls: list[int] = []
    real = encoder.encode
    encoder.encode = lambda texts: calls.append(len(texts)) or real(texts)  # type: ignore[method-assign]
    try:
        rankings = [reranker.rank(p, p["candidates"]) for p in pools]
    finally:
        del encoder.encode
    assert calls == []
    assert all(r.profile == "grounded" and "grounding" in r.weights for r in rankings)


def test_a_direct_rank_encodes_its_pool_in_one_batch(static_cache):
    pool = read_pools("faithbench", limit=1)[0]
    reranker = Reranker(embedding_backend="static")
    get_embedder(None, "static").clear()
    encoder = get_embedder(None, "static").encoder
    calls: list[list[str]] = []
    real = encoder.encode
    encoder.encode = lambda texts: calls.append(list(texts)) or real(texts)  # type: ignore[method-assign]
    try:
        ranking = reranker.rank(pool, pool["candidates"])
    finally:
        del encoder.encode
    assert {"grounding", "consensus", "relevance"} <= set(ranking.weights)
    assert len(calls) == 1
    assert pool["query"] in calls[0] and all(c["content"] in calls[0] for c in pool["candidates"])


def test_an_unknown_backend_is_a_clear_error():
    with pytest.raises(ConfigError, match="unknown embedding backend 'gpu'.*torch, onnx, static"):
        Reranker(embedding_backend="gpu")
    result = CliRunner().invoke(main, ["score", str(EXAMPLES), "--embedding-backend", "gpu"])
    assert result.exit_code == 2 and "'gpu' is not one of 'torch', 'onnx', 'static'" in result.output
    assert DEFAULT_BACKEND in BACKENDS


@pytest.mark.slow
def test_rerank_score_and_prepare_with_static_vectors(static_cache, tmp_path):
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(main, ["score", str(EXAMPLES), "-o", str(out), "-q", "--embedding-backend", "static"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == len(EXAMPLES.read_text().splitlines())
    assert all("error" not in line for line in lines)
    chat = next(line for line in lines if line["profile"] == "chat")
    assert "relevance" in chat["candidates"][0]["raw"]
    prepared = CliRunner().invoke(main, ["prepare", "--embedding-backend", "static"])
    assert prepared.exit_code == 0, prepared.output
    assert f"static: ready in {static_cache / 'static'}" in prepared.output and "256-dimensional" in prepared.output
    prepared = CliRunner().invoke(main, ["prepare"])  # the default backend: onnx
    assert prepared.exit_code == 0, prepared.output
    assert f"onnx: ready in {static_cache / 'onnx'}" in prepared.output and "384-dimensional" in prepared.output


def test_an_artifact_is_built_once_into_the_cache_with_a_message(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    assert cache_dir() == tmp_path / "cache"
    model = bundled_model_path()
    builds: list[Path] = []

    def build(folder: Path) -> None:
        builds.append(folder)
        (folder / "vectors.txt").write_text("built")

    with caplog.at_level(logging.WARNING, logger="rerank"):
        first = artifact("demo", model, build, what="building a demo artifact")
        second = artifact("demo", model, build, what="building a demo artifact")
    assert first == second and first.parent == tmp_path / "cache" / "demo"
    assert (first / "vectors.txt").read_text() == "built" and len(builds) == 1
    assert [r.getMessage() for r in caplog.records] == [
        f"rerank: building a demo artifact from {model} into {first} (once; `rerank prepare "
        f"--embedding-backend demo` does this ahead of time)"]
    assert [p.name for p in first.parent.iterdir()] == [first.name]  # no temporary folder left


def test_a_new_artifact_format_is_built_beside_the_old_one(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    model = bundled_model_path()
    formats: list[str] = []

    def build(name: str):
        return lambda folder: (formats.append(name), (folder / "format.txt").write_text(name))

    old = artifact("demo", model, build("old"), what="building")
    new = artifact("demo", model, build("v2"), what="building", version="v2")
    again = artifact("demo", model, build("v2 again"), what="building", version="v2")
    assert new == again and new.name == f"{old.name}-v2" and formats == ["old", "v2"]
    assert (old / "format.txt").read_text() == "old" and (new / "format.txt").read_text() == "v2"


def test_the_cache_folder_follows_xdg_when_not_named(monkeypatch, tmp_path):
    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "rerank"
