"""Instructions: the share of the query's checkable instructions that each candidate follows."""

from __future__ import annotations

from typing import Sequence

from ..instructions import instructions_in
from ..types import Candidate, Request
from .base import Scorer


class InstructionsFollowed(Scorer):
    """Fraction of the instructions read from the query ("in 3 sentences", "no commas") that the
    candidate follows; 1 for every candidate when the query states none."""

    name = "instructions"
    min_spread = 0.25

    def score(self, request: Request, candidates: Sequence[Candidate]) -> list[float]:
        instructions = instructions_in(request.query)
        if not instructions:
            return [1.0] * len(candidates)
        return [sum(i.check(c.content or "") is None for i in instructions) / len(instructions) for c in candidates]
