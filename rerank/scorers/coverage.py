"""Coverage: how much of what the other candidates say this candidate says too (recall-oriented agreement).

Consensus asks "is this answer like the others?"; coverage asks "does this answer contain what
the others agree on?". It rewards the complete answer over a fragment of it, and gives nothing
for padding that no other candidate shares.
"""

from __future__ import annotations

from typing import Sequence

from ..text import terms
from ..types import Candidate, Request
from .base import AGREEMENT_MIN_CANDIDATES, Scorer, mean_agreement


class Coverage(Scorer):
    """Mean share of each other candidate's distinct content words that this candidate also uses."""

    name = "coverage"
    min_spread = 0.01
    min_candidates = AGREEMENT_MIN_CANDIDATES

    def score(self, request: Request, candidates: Sequence[Candidate]) -> list[float]:
        vocab = [set(terms(c.text)) for c in candidates]
        return mean_agreement(vocab, lambda mine, theirs: len(mine & theirs) / len(theirs) if theirs else 0.0,
                              symmetric=False)
