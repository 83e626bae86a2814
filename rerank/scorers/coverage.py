"""Coverage: how much of what the other candidates say this candidate says too (recall-oriented agreement).

Consensus asks "is this answer like the others?"; coverage asks "does this answer contain what
the others agree on?". It rewards the complete answer over a fragment of it, and gives nothing
for padding that no other candidate shares.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..text import terms
from ..types import Candidate, Request
from .base import Scorer


class Coverage(Scorer):
    """Mean share of each other candidate's distinct content words that this candidate also uses."""

    name = "coverage"
    min_spread = 0.01

    def score(self, request: Request, candidates: Sequence[Candidate]) -> list[float]:
        vocab = [set(terms(c.text)) for c in candidates]
        n = len(vocab)
        if n < 2:
            return [0.0] * n
        covered = np.zeros((n, n))
        for i in range(n):
            for j in range(n):
                if i != j and vocab[j]:
                    covered[i, j] = len(vocab[i] & vocab[j]) / len(vocab[j])
        return (covered.sum(axis=1) / (n - 1)).tolist()
