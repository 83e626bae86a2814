"""Consensus: how much each candidate agrees with the rest of the pool (minimum Bayes risk)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..types import Candidate, Request
from .base import AGREEMENT_MIN_CANDIDATES
from .embedding import EmbeddingRelevance


class Consensus(EmbeddingRelevance):
    """Mean embedding similarity of each candidate to every other candidate of the pool."""

    name = "consensus"
    min_spread = 0.02
    min_candidates = AGREEMENT_MIN_CANDIDATES

    def applies(self, request: Request) -> bool:
        return True

    def texts(self, request: Request, candidates: Sequence[Candidate]) -> list[str]:
        return [c.text for c in candidates] if len(candidates) >= 2 else []

    def score(self, request: Request, candidates: Sequence[Candidate]) -> list[float]:
        if len(candidates) < 2:
            return [0.0] * len(candidates)
        vectors = self.embedder.encode(self.texts(request, candidates))
        similarity = vectors @ vectors.T
        np.fill_diagonal(similarity, 0.0)
        scores: list[float] = (similarity.sum(axis=1) / (len(candidates) - 1)).tolist()
        return scores
