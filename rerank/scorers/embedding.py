"""Embedding scorers: relevance of each candidate to the query, and grounding in the context."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..embeddings import Embedder, get_embedder
from ..text import sentences
from ..types import Candidate, Request
from .base import Scorer


class EmbeddingRelevance(Scorer):
    """Cosine similarity between the query and each candidate's text."""

    name = "relevance"
    min_spread = 0.02

    def __init__(self, *, model: str | None = None, embedder: Embedder | None = None) -> None:
        self._embedder = embedder
        self._model = model

    @property
    def embedder(self) -> Embedder:
        """The model this scorer encodes with, loaded on first use."""
        if self._embedder is None:
            self._embedder = get_embedder(self._model)
        return self._embedder

    def applies(self, request: Request) -> bool:
        return bool(request.query.strip())

    def score(self, request: Request, candidates: Sequence[Candidate]) -> list[float]:
        vectors = self.embedder.encode([request.query] + [c.text for c in candidates])
        return (vectors[1:] @ vectors[0]).tolist()


class EmbeddingGrounding(EmbeddingRelevance):
    """How well the context supports each candidate: every candidate sentence is matched to its
    closest context sentence, and the candidate scores the mean of those best matches."""

    name = "grounding"
    min_spread = 0.02

    def applies(self, request: Request) -> bool:
        return bool(request.context and request.context.strip())

    def score(self, request: Request, candidates: Sequence[Candidate]) -> list[float]:
        context = sentences(request.context or "") or [request.context or ""]
        per_candidate = [sentences(c.text) or [c.text] for c in candidates]
        flat = [s for group in per_candidate for s in group]
        vectors = self.embedder.encode(context + flat)
        support = (vectors[len(context):] @ vectors[: len(context)].T).max(axis=1)
        scores, start = [], 0
        for group in per_candidate:
            scores.append(float(np.mean(support[start : start + len(group)])))
            start += len(group)
        return scores
