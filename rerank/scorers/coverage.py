"""Coverage: how much of what the other candidates say this candidate says too (recall-oriented agreement).

Consensus asks "is this answer like the others?"; coverage asks "does this answer contain what
the others agree on?". It rewards the complete answer over a fragment of it, and gives nothing
for padding that no other candidate shares.
"""

from __future__ import annotations

from typing import Sequence

from ..text import terms
from ..types import Candidate, Request
from .base import AGREEMENT_MIN_CANDIDATES, Scorer, mean_shares


class Coverage(Scorer):
    """Mean share of each other candidate's distinct content words that this candidate also uses."""

    name = "coverage"
    min_spread = 0.01
    min_candidates = AGREEMENT_MIN_CANDIDATES

    def score(self, request: Request, candidates: Sequence[Candidate]) -> list[float]:
        vocab = [set(terms(c.text)) for c in candidates]

        def shares(mine: set[str], theirs: set[str]) -> tuple[float, float]:
            shared = len(mine & theirs)  # once per pair: each side's share of the other's words
            return (shared / len(theirs) if theirs else 0.0, shared / len(mine) if mine else 0.0)

        return mean_shares(vocab, shares)
