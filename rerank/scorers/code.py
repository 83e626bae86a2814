"""Code scorers that read the program, never run it: agreement between completions, simplicity.

Candidates often repeat the prompt (a signature and docstring) before their own code; comparing
whole texts would mostly compare that shared prompt, so both scorers look at the completion only.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Sequence

import numpy as np

from ..code import completion_of, extract_code
from ..types import Candidate, Request
from .base import Scorer

_TOKEN = re.compile(r"\w+|[^\w\s]")


def code_tokens(request: Request, candidate: Candidate) -> Counter[str]:
    """The multiset of identifier, number and operator tokens of the candidate's own code."""
    code = completion_of(extract_code(candidate.content or ""), request.query)
    return Counter(_TOKEN.findall(code))


class CodeConsensus(Scorer):
    """Mean token overlap (multiset Jaccard) of each candidate's code with every other candidate's."""

    name = "code-consensus"
    min_spread = 0.01

    def score(self, request: Request, candidates: Sequence[Candidate]) -> list[float]:
        tokens = [code_tokens(request, c) for c in candidates]
        n = len(tokens)
        if n < 2:
            return [0.0] * n
        overlap = np.zeros((n, n))
        for i in range(n):
            for j in range(i + 1, n):
                union = sum((tokens[i] | tokens[j]).values())
                overlap[i, j] = overlap[j, i] = sum((tokens[i] & tokens[j]).values()) / union if union else 1.0
        return (overlap.sum(axis=1) / (n - 1)).tolist()


class Simplicity(Scorer):
    """Fewer code tokens score higher: among programs that agree, the simplest is the safest bet."""

    name = "simplicity"
    min_spread = 1.0

    def score(self, request: Request, candidates: Sequence[Candidate]) -> list[float]:
        return [-float(sum(code_tokens(request, c).values())) for c in candidates]
