"""Embedding scorers: relevance of each candidate to the query, and grounding in the context."""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from ..embeddings import Embedder, check_backend, get_embedder
from ..text import sentences
from ..types import Candidate, Request
from .base import Scorer


class EmbeddingRelevance(Scorer):
    """Cosine similarity between the query and each candidate's text."""

    name = "relevance"
    min_spread = 0.02

    def __init__(self, *, model: str | None = None, embedding_backend: str | None = None,
                 embedder: Embedder | None = None) -> None:
        self._embedder = embedder
        self._model = model
        self._backend = check_backend(embedding_backend)

    @property
    def embedder(self) -> Embedder:
        """The shared embedder this scorer encodes with (its backend loads on the first encode)."""
        if self._embedder is None:
            self._embedder = get_embedder(self._model, self._backend)
        return self._embedder

    def applies(self, request: Request) -> bool:
        return bool(request.query.strip())

    def texts(self, request: Request, candidates: Sequence[Candidate]) -> list[str]:
        """Every text ``score`` encodes for this pool, so that a pool's texts can go in one batch."""
        return [request.query] + [c.text for c in candidates]

    def score(self, request: Request, candidates: Sequence[Candidate]) -> list[float]:
        vectors = self.embedder.encode(self.texts(request, candidates))
        scores: list[float] = (vectors[1:] @ vectors[0]).tolist()
        return scores


class EmbeddingGrounding(EmbeddingRelevance):
    """How well the context supports each candidate: every candidate sentence is matched to its
    closest context sentence, and the candidate scores the mean of those best matches."""

    name = "grounding"
    min_spread = 0.02

    def applies(self, request: Request) -> bool:
        return bool(request.context and request.context.strip())

    def texts(self, request: Request, candidates: Sequence[Candidate]) -> list[str]:
        context, per_candidate = self._sentences(request, candidates)
        return context + [s for group in per_candidate for s in group]

    @staticmethod
    def _sentences(request: Request, candidates: Sequence[Candidate]) -> tuple[list[str], list[list[str]]]:
        context = sentences(request.context or "") or [request.context or ""]
        return context, [sentences(c.text) or [c.text] for c in candidates]

    def score(self, request: Request, candidates: Sequence[Candidate]) -> list[float]:
        context, per_candidate = self._sentences(request, candidates)
        flat = [s for group in per_candidate for s in group]
        vectors = self.embedder.encode(context + flat)
        support = (vectors[len(context):] @ vectors[: len(context)].T).max(axis=1)
        scores, start = [], 0
        for group in per_candidate:
            scores.append(float(np.mean(support[start : start + len(group)])))
            start += len(group)
        return scores


def encode_ahead(jobs: Iterable[tuple[Iterable[object], Request, Sequence[Candidate]]]) -> None:
    """Encode, in one call per embedder, every text that the embedding scorers of each
    ``(scorers, request, pool)`` job will ask for, so that scoring finds each vector cached."""
    wanted: dict[int, tuple[Embedder, dict[str, None]]] = {}
    for scorers, request, pool in jobs:
        for scorer in scorers:
            if isinstance(scorer, EmbeddingRelevance):
                texts = wanted.setdefault(id(scorer.embedder), (scorer.embedder, {}))[1]
                texts.update(dict.fromkeys(t for t in scorer.texts(request, pool) if t))
    for embedder, texts in wanted.values():
        if texts:
            embedder.encode(list(texts))
