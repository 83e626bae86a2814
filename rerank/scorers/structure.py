"""Structure: visible organisation of an answer (list items, numbered steps, headings)."""

from __future__ import annotations

import re
from typing import Sequence

from ..types import Candidate, Request
from .base import Scorer

_BLOCK = re.compile(r"(?m)^\s*(?:[-*•]|\d+[.)]|#{1,6})\s+\S")


class Structure(Scorer):
    """Number of list items, numbered steps and headings; a pool where none has any is a tie."""

    name = "structure"
    min_spread = 1.0

    def score(self, request: Request, candidates: Sequence[Candidate]) -> list[float]:
        return [float(len(_BLOCK.findall(c.content or ""))) for c in candidates]
