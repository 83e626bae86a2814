"""Encoding ahead: batches warmed before their pools are ranked, with rankings unchanged."""

import numpy as np
import pytest
from conftest import read_pools

from rerank import Reranker
from rerank.embeddings import Embedder
from rerank.warm import warm, warmed

pytestmark = pytest.mark.slow  # both tests encode whole faithbench pools (long texts)


def test_warmed_yields_every_item_in_order_and_looks_ahead_one_batch():
    pools = read_pools("faithbench", limit=6)
    items = pools[:3] + ["not a pool"] + pools[3:]
    asked: list[int] = []
    yielded: list[tuple[int, int]] = []

    def pool_of(item):
        asked.append(id(item))
        return None if isinstance(item, str) else (item, item["candidates"])

    for item in warmed(Reranker(), items, pool_of, batch_texts=25, first_batch=12):
        yielded.append((id(item), len(asked)))
    assert [i for i, _ in yielded] == [id(item) for item in items]
    # a pool of 10 candidates counts 11 texts: the first batch (12) closes after two pools, the
    # next (25) after three more pools (the non-pool in between adds nothing), the last at the end
    assert [seen for _, seen in yielded] == [2, 2, 6, 6, 6, 6, 7]


def test_warming_fills_the_embedder_cache_and_changes_no_ranking():
    pools = read_pools("faithbench", limit=3)
    embedder = Embedder(cache_size=10_000)
    cold = [Reranker(scorers=["grounding", "consensus"]).rank(p, p["candidates"]) for p in pools]
    from rerank.scorers.consensus import Consensus
    from rerank.scorers.embedding import EmbeddingGrounding

    reranker = Reranker(scorers=[EmbeddingGrounding(embedder=embedder), Consensus(embedder=embedder)])
    warm(reranker, [(p, p["candidates"]) for p in pools] + [({"query": "q"}, "not a list of candidates")])
    answers = [c["content"] for p in pools for c in p["candidates"]]
    assert all(a in embedder._cache for a in answers)
    hot = [reranker.rank(p, p["candidates"]) for p in pools]
    for a, b in zip(cold, hot):
        assert a.best_index == b.best_index
        # batched encoding pads differently: the same vectors up to float noise
        assert np.allclose([c.score for c in a], [c.score for c in b], atol=1e-3)
