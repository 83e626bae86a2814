"""Code scorers that read the program, never run it: agreement between completions, simplicity.

Candidates often repeat the prompt (a signature and docstring) before their own code; comparing
whole texts would mostly compare that shared prompt, so both scorers look at the completion only.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Sequence

from ..fenced_code import extract_code
from ..python_checks import completion_of
from ..types import Candidate, Request
from .base import AGREEMENT_MIN_CANDIDATES, Scorer, mean_agreement

_TOKEN = re.compile(r"\w+|[^\w\s]")


def code_tokens(request: Request, candidate: Candidate) -> Counter[str]:
    """The multiset of identifier, number and operator tokens of the candidate's own code."""
    code = completion_of(extract_code(candidate.content or ""), request.query)
    return Counter(_TOKEN.findall(code))


def multiset_jaccard(a: Counter[str], b: Counter[str]) -> float:
    """Shared tokens over all tokens, counting repeats; two empty programs agree."""
    union = sum((a | b).values())
    return sum((a & b).values()) / union if union else 1.0


class CodeConsensus(Scorer):
    """Mean token overlap (multiset Jaccard) of each candidate's code with every other candidate's."""

    name = "code-consensus"
    min_spread = 0.01
    min_candidates = AGREEMENT_MIN_CANDIDATES

    def score(self, request: Request, candidates: Sequence[Candidate]) -> list[float]:
        return mean_agreement([code_tokens(request, c) for c in candidates], multiset_jaccard)


class Simplicity(Scorer):
    """Fewer code tokens score higher: among programs that agree, the simplest is the safest bet."""

    name = "simplicity"
    min_spread = 1.0

    def score(self, request: Request, candidates: Sequence[Candidate]) -> list[float]:
        return [-float(sum(code_tokens(request, c).values())) for c in candidates]
