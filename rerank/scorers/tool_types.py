"""Tool-argument types: prefer calls whose argument values have the types the schema declares.

The ``tools`` validator gates only what certainly breaks a call (an unknown function, a missing
or undeclared argument, a value outside an enum); a JSON type that differs from the declared one
is weaker evidence, since hand-written schemas are often looser than their tools. This scorer
turns it into a soft preference.
"""

from __future__ import annotations

from typing import Sequence

from ..types import Candidate, Request
from ..validators.tools import ToolCallValidator
from .base import Scorer


class ToolArgumentTypes(Scorer):
    """0 for a candidate whose calls pass every ``tools`` check but have an argument of the wrong
    JSON type, else 1 (calls that fit, a text answer, or a call the validator already fails)."""

    name = "tool-types"
    min_spread = 0.3

    def __init__(self) -> None:
        self._validator = ToolCallValidator()

    def applies(self, request: Request) -> bool:
        return bool(request.tools)

    def score(self, request: Request, candidates: Sequence[Candidate]) -> list[float]:
        return [float(self._validator.type_mismatch(request, c) is None) for c in candidates]
