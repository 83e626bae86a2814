"""BM25 scorers: lexical relevance to the query, and lexical support by the context.

BM25Okapi's idf goes negative for a term found in more than half of the documents, and a pool
of two to five candidates is exactly such a corpus; BM25Plus keeps every weight positive.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from rank_bm25 import BM25Plus

from ..text import sentences, terms
from ..types import Candidate, Request
from .base import Scorer


class BM25Relevance(Scorer):
    """BM25Plus score of the query against each candidate, with the pool as the corpus."""

    name = "bm25"
    min_spread = 0.05

    def applies(self, request: Request) -> bool:
        return bool(terms(request.query))

    def score(self, request: Request, candidates: Sequence[Candidate]) -> list[float]:
        corpus = [terms(c.text) or [""] for c in candidates]
        scores: list[float] = BM25Plus(corpus).get_scores(terms(request.query)).tolist()
        return scores


class BM25Grounding(Scorer):
    """Lexical support of each candidate by the context: every candidate sentence is scored
    against its best-matching context sentence (BM25Plus over the context's sentences), per
    query term, and the candidate scores the mean over its sentences."""

    name = "bm25-grounding"
    min_spread = 0.05

    def applies(self, request: Request) -> bool:
        return bool(request.context and terms(request.context))

    def score(self, request: Request, candidates: Sequence[Candidate]) -> list[float]:
        context = [terms(s) for s in sentences(request.context or "")]
        index = BM25Plus([s for s in context if s] or [terms(request.context or "")])
        scores = []
        for candidate in candidates:
            support = [
                float(index.get_scores(words).max()) / len(words)
                for words in (terms(s) for s in sentences(candidate.text))
                if words
            ]
            scores.append(float(np.mean(support)) if support else 0.0)
        return scores
