"""JSON consensus: candidates compared by the values their JSON holds, not by how it is written.

Each candidate's JSON (bare or fenced) is flattened to (path, canonical value) leaves, so key
order, whitespace and ``3`` vs ``3.0`` do not matter; agreement is the Jaccard overlap of leaves.
"""

from __future__ import annotations

from typing import Any, Sequence

from ..toolcalls import canonical_json
from ..types import Candidate, Request
from ..validators.json_validators import extract_json
from .base import AGREEMENT_MIN_CANDIDATES, Scorer, mean_agreement

MAX_LEAVES = 10_000


def leaves(value: Any, path: str = "$") -> set[tuple[str, str]]:
    """The (path, canonical JSON) pairs of every scalar in ``value``, at most MAX_LEAVES."""
    out: set[tuple[str, str]] = set()
    stack = [(path, value)]
    while stack and len(out) < MAX_LEAVES:
        where, item = stack.pop()
        if isinstance(item, dict):
            stack += [(f"{where}.{key}", v) for key, v in item.items()]
        elif isinstance(item, list):
            stack += [(f"{where}[{i}]", v) for i, v in enumerate(item)]
        else:
            out.add((where, canonical_json(item)))
    return out


def _jaccard(a: set[tuple[str, str]] | None, b: set[tuple[str, str]] | None) -> float:
    if a is None or b is None:
        return 0.0
    union = a | b
    return len(a & b) / len(union) if union else 1.0


class JSONConsensus(Scorer):
    """Mean leaf overlap of each candidate's JSON with every other candidate's; no JSON agrees with nothing."""

    name = "json-consensus"
    min_spread = 0.02
    min_candidates = AGREEMENT_MIN_CANDIDATES

    def score(self, request: Request, candidates: Sequence[Candidate]) -> list[float]:
        parsed = []
        for candidate in candidates:
            value, error = extract_json(candidate.content or "")
            parsed.append(None if error else leaves(value))
        return mean_agreement(parsed, _jaccard)
