"""Character consensus: how much each candidate's text looks like the rest of the pool's, letter for letter.

Where answers are structured (tool calls, JSON), agreement on the surface form is a signal of
its own: the same function written the same way, the same argument values quoted alike, no
prose around the call. Each text becomes counts of its character 3-, 4- and 5-grams (as in
chrF); candidates agree by the cosine of those counts. No model, no tokenizer: numpy alone.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..types import Candidate, Request
from .base import AGREEMENT_MIN_CANDIDATES, Scorer

NGRAMS = (3, 4, 5)
"""Lengths of the character n-grams counted."""

MAX_CHARS = 20_000
"""Characters of each text read (the start): beyond it a text's shape is already known."""

_BASE = np.uint64(1_114_111)  # one more than the largest code point: n-gram codes stay distinct


def ngram_codes(text: str) -> np.ndarray:
    """One 64-bit code per character n-gram of ``text`` (every length in NGRAMS), with repeats."""
    # surrogatepass: a lone surrogate (valid in a Python str, e.g. from JSON) is one more code point
    points = np.frombuffer(text[:MAX_CHARS].encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(np.uint64)
    out = []
    with np.errstate(over="ignore"):  # codes wrap modulo 2**64: a hash, collisions are negligible
        for n in NGRAMS:
            if len(points) < n:
                continue
            code = np.full(len(points) - n + 1, n, dtype=np.uint64)
            for k in range(n):
                code = code * _BASE + points[k : len(points) - n + 1 + k]
            out.append(code)
    return np.concatenate(out) if out else np.zeros(0, dtype=np.uint64)


def ngram_similarity(texts: Sequence[str]) -> np.ndarray:
    """The ``(len(texts), len(texts))`` cosine similarity of the texts' character n-gram counts
    (0 for a text too short to have any)."""
    codes = [ngram_codes(t) for t in texts]
    owner = np.repeat(np.arange(len(texts)), [len(c) for c in codes])
    vocabulary, column = np.unique(np.concatenate(codes) if codes else np.zeros(0, np.uint64), return_inverse=True)
    counts = np.zeros((len(texts), len(vocabulary)))
    np.add.at(counts, (owner, column), 1.0)
    norms = np.linalg.norm(counts, axis=1)
    counts /= np.where(norms > 0, norms, 1.0)[:, None]
    return counts @ counts.T


class CharConsensus(Scorer):
    """Mean character n-gram cosine of each candidate's text (content and calls) with every other's."""

    name = "char-consensus"
    min_spread = 0.02
    min_candidates = AGREEMENT_MIN_CANDIDATES

    def score(self, request: Request, candidates: Sequence[Candidate]) -> list[float]:
        if len(candidates) < 2:
            return [0.0] * len(candidates)
        similarity = ngram_similarity([c.text for c in candidates])
        np.fill_diagonal(similarity, 0.0)
        scores: list[float] = (similarity.sum(axis=1) / (len(candidates) - 1)).tolist()
        return scores
