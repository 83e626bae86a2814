"""Encoding ahead: the texts of many pools embedded in large batches before the pools are ranked.

Only speed changes. One large call sorts texts by length and pads little, where pool by pool
every short answer is padded to its pool's longest; the scorers then find their vectors in the
embedder's cache (see :class:`rerank.embeddings.Embedder`).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

from .errors import RerankError
from .reranker import Reranker
from .scorers.embedding import encode_ahead
from .types import Request, coerce_candidates

T = TypeVar("T")

BATCH_TEXTS = 1024
"""Texts encoded together (well under the embedder's cache of 8192)."""


def warm(reranker: Reranker, pools: Sequence[tuple[Any, Any]]) -> None:
    """Encode, in one call per embedder, every text ``reranker``'s embedding scorers will ask for
    on these (request, candidates) pools; a malformed pool is skipped (ranking it reports why)."""
    jobs = []
    for request, candidates in pools:
        try:
            request = Request.coerce(request)
            pool = coerce_candidates(candidates)
            _, weighted, _ = reranker.plan(request)
        except RerankError:
            continue
        jobs.append(([scorer for scorer, _ in weighted], request, pool))
    try:
        encode_ahead(jobs)
    except Exception:  # noqa: BLE001 - warming only saves time: ranking each pool reports its error
        pass


def warmed(reranker: Reranker, items: Iterable[T], pool_of: Callable[[T], tuple[Any, Any] | None], *,
           batch_texts: int = BATCH_TEXTS, first_batch: int = BATCH_TEXTS // 8) -> Iterator[T]:
    """``items`` unchanged and in order, each batch's pools warmed (see :func:`warm`) before it is
    yielded. ``pool_of`` gives an item's (request, candidates), or None for an item with no pool.
    The first batch is small so that the first results come soon."""
    batch: list[T] = []
    pools: list[tuple[Any, Any]] = []
    size, limit = 0, first_batch
    for item in items:
        batch.append(item)
        pool = pool_of(item)
        if pool is not None:
            pools.append(pool)
            size += 1 + (len(pool[1]) if isinstance(pool[1], Sequence) else 0)
        if size >= limit:
            warm(reranker, pools)
            yield from batch
            batch, pools, size, limit = [], [], 0, batch_texts
    warm(reranker, pools)
    yield from batch
