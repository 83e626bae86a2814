"""Tool-call consensus: candidates vote on what to call, compared by meaning, not by text.

Every candidate's calls are parsed (native ``tool_calls``, JSON or Python-call syntax) and put in
canonical form, so ``f(a=1)``, ``{"name": "f", "arguments": {"a": 1.0}}`` and a native call agree.
A text-only answer is the vote "call nothing", which wins where most samples decline to call.
"""

from __future__ import annotations

from typing import Sequence

from ..toolcalls import CanonicalCall, canonical_call, parse_calls
from ..types import Candidate, Request
from .base import AGREEMENT_MIN_CANDIDATES, Scorer, mean_agreement


def call_similarity(a: CanonicalCall, b: CanonicalCall) -> float:
    """1 for the same call; for the same function, 0.5 plus half the share of equal arguments."""
    if a[0] != b[0]:
        return 0.0
    if a[1] is None or b[1] is None:
        return 0.5 if a[1] is b[1] else 0.25
    args_a, args_b = dict(a[1]), dict(b[1])
    names = args_a.keys() | args_b.keys()
    if not names:
        return 1.0
    equal = sum(args_a.get(k) == args_b.get(k) for k in names)
    return 0.5 + 0.5 * equal / len(names)


def calls_similarity(a: Sequence[CanonicalCall], b: Sequence[CanonicalCall]) -> float:
    """Agreement of two sets of calls: each call matched greedily to its most similar partner,
    divided by the larger set's size; two empty sets (both call nothing) agree fully."""
    if not a and not b:
        return 1.0
    if not a or not b:
        return 0.0
    pairs = sorted(((call_similarity(x, y), i, j) for i, x in enumerate(a) for j, y in enumerate(b)), reverse=True)
    used_a, used_b, total = set(), set(), 0.0
    for sim, i, j in pairs:
        if i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
            total += sim
    return total / max(len(a), len(b))


class ToolConsensus(Scorer):
    """Mean agreement of each candidate's canonical tool calls with every other candidate's."""

    name = "tool-consensus"
    min_spread = 0.05
    min_candidates = AGREEMENT_MIN_CANDIDATES

    def applies(self, request: Request) -> bool:
        return bool(request.tools)

    def score(self, request: Request, candidates: Sequence[Candidate]) -> list[float]:
        return mean_agreement([self.calls_of(request, c) for c in candidates], calls_similarity)

    @staticmethod
    def calls_of(request: Request, candidate: Candidate) -> list[CanonicalCall]:
        """The candidate's calls in canonical form; [] when it answers in text."""
        return [canonical_call(call, request.tools) for call in parse_calls(candidate, tools=request.tools)]

