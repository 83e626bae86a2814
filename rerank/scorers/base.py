"""The two interfaces every signal implements: a Scorer grades, a Validator gates."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping, Sequence, TypeVar

from ..types import Candidate, Check, Request


class Scorer(ABC):
    """Grades a whole pool of candidates at once; higher is better.

    Scores are raw (any scale); the reranker normalises them within the pool. ``min_spread`` is
    the smallest spread of raw scores that means something: a pool whose scores differ by less is
    treated as a tie instead of having noise stretched into a ranking. ``min_candidates`` is the
    smallest pool in which the signal can tell candidates apart; the reranker leaves it out of
    smaller pools.
    """

    name: ClassVar[str]
    min_spread: ClassVar[float] = 1e-6
    min_candidates: ClassVar[int] = 1

    def applies(self, request: Request) -> bool:
        """Whether this scorer has anything to say about this request (e.g. grounding needs context)."""
        return True

    @abstractmethod
    def score(self, request: Request, candidates: Sequence[Candidate]) -> list[float] | Paid:
        """One raw score per candidate, in order (``Paid`` when the scores cost model calls)."""


@dataclass(frozen=True)
class Paid:
    """Scores that cost model calls: the scores, the calls made, their usage summed, what failed."""

    scores: list[float]
    calls: int
    usage: Mapping[str, Any] | None = None
    failures: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """JSON shape: ``{"calls", "usage", "failures"}``."""
        return {"calls": self.calls, "usage": dict(self.usage or {}), "failures": list(self.failures)}


class Validator(ABC):
    """Accepts or rejects each candidate, with a message a person can act on.

    A candidate that fails is never ranked above one that passes.
    """

    name: ClassVar[str]

    def applies(self, request: Request) -> bool:
        """Whether this validator should run on this request (e.g. json-schema needs a schema)."""
        return True

    @abstractmethod
    def check(self, request: Request, candidate: Candidate) -> Check:
        """The verdict on one candidate."""

    def check_pool(self, request: Request, candidates: Sequence[Candidate]) -> list[Check]:
        """Verdicts for a whole pool; override to batch or parallelise."""
        return [self.check(request, c) for c in candidates]

    def passed(self, message: str = "ok") -> Check:
        """A passing Check from this validator."""
        return Check(self.name, True, message)

    def failed(self, message: str) -> Check:
        """A failing Check from this validator."""
        return Check(self.name, False, message)


T = TypeVar("T")


AGREEMENT_MIN_CANDIDATES = 3
"""Agreement needs a third voice: in a pair each candidate agrees with the other exactly as much
as the other with it, and an agreement measured one way (recall) only says which is longer."""


def mean_agreement(items: Sequence[T], agree: Callable[[T, T], float]) -> list[float]:
    """For each item, the mean of ``agree(item, other)`` over every other item (``agree`` symmetric,
    each pair computed once); 0 for a lone item."""
    def both(mine: T, theirs: T) -> tuple[float, float]:
        value = agree(mine, theirs)
        return value, value

    return mean_shares(items, both)


def mean_shares(items: Sequence[T], shares: Callable[[T, T], tuple[float, float]]) -> list[float]:
    """For each item, the mean over every other item of its share of their pair, where
    ``shares(a, b)`` gives ``(a's share, b's share)`` and each pair is computed once; 0 for a lone item.
    Each item's shares are added in the order of the others."""
    n = len(items)
    if n < 2:
        return [0.0] * n
    totals = [0.0] * n
    for i in range(n):
        for j in range(i + 1, n):
            mine, theirs = shares(items[i], items[j])
            totals[i] += mine
            totals[j] += theirs
    return [t / (n - 1) for t in totals]
