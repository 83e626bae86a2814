"""Coverage: how much of what the other candidates say this candidate says too (recall-oriented agreement).

Consensus asks "is this answer like the others?"; coverage asks "does this answer contain what
the others agree on?". It rewards the complete answer over a fragment of it, and gives nothing
for padding that no other candidate shares.
"""

from __future__ import annotations

from typing import Sequence

from ..text import STOPWORDS, words
from ..types import Candidate, Request
from .base import AGREEMENT_MIN_CANDIDATES, Scorer


class Coverage(Scorer):
    """Mean share of each other candidate's distinct content words that this candidate also uses."""

    name = "coverage"
    min_spread = 0.01
    min_candidates = AGREEMENT_MIN_CANDIDATES

    def score(self, request: Request, candidates: Sequence[Candidate]) -> list[float]:
        vocab = [set(words(c.text)).difference(STOPWORDS) for c in candidates]
        n = len(vocab)
        if n < 2:
            return [0.0] * n
        # What mean_agreement(symmetric=False) computes, each pair's shared words counted once; each
        # candidate's shares are still added in the order of the others (the same float sums).
        totals = [0.0] * n
        for i in range(n):
            for j in range(i + 1, n):
                shared = len(vocab[i] & vocab[j])
                totals[i] += shared / len(vocab[j]) if vocab[j] else 0.0
                totals[j] += shared / len(vocab[i]) if vocab[i] else 0.0
        return [t / (n - 1) for t in totals]
