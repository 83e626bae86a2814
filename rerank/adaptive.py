"""Pay for N only when it helps: adaptive rounds, and first-valid.

- Adaptive N (``n="auto"``): ask for ``min_n`` candidates; when they agree and pass every gate
  (:mod:`rerank.agreement`, by the ``settle`` rule), stop. Otherwise top up, in one more round
  up to ``max_n`` (``top_up="round"``, the default), doubling the candidates in hand each round
  (``top_up="double"``) or one candidate a round (``top_up="step"``: the fewest candidates, at
  up to ``max_n - min_n`` more rounds of latency), and look again. A ``deadline`` bounds every
  round together, and a ``max_tokens_total`` budget stops topping up once the tokens spent reach
  it (a top-up asks for no more candidates than the budget left pays for at the cost per
  candidate so far).
- First valid (``strategy="first-valid"``): ask for N at once and stop at the first candidate
  that passes every gate; the requests still running are cancelled where the runner can
  (asyncio tasks), or left to finish unheard (threads).

Each round is one :func:`rerank.generate.generate` fan-out. The generation records every
round (``{"asked", "received"}``) and why it stopped, for the ranking's ledger.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, Awaitable, Callable, Mapping, Sequence

from .agreement import SETTLE_RULES, Agreement
from .errors import ConfigError
from .generate import DEFAULT_CONCURRENCY, Accept, Generated, Generation, agenerate, generate
from .wire import Kind, tokens_of

STRATEGIES = ("best", "first-valid")
TOP_UPS = ("round", "double", "step")


@dataclass(frozen=True)
class Fanning:
    """How one call fans out: fixed ``n``, adaptive between ``min_n`` and ``max_n``, or first-valid."""

    n: int
    models: tuple[str, ...] = ()
    native_n: bool = True
    concurrency: int = DEFAULT_CONCURRENCY
    deadline: float | None = None
    adaptive: bool = False
    min_n: int = 2
    max_n: int = 8
    top_up: str = "round"
    settle: str = "majority"
    strategy: str = "best"
    max_tokens_total: int | None = None


def check_fanning(*, adaptive: bool, min_n: Any, max_n: Any, top_up: Any, strategy: Any,
                  max_tokens_total: Any, most: int, settle: Any = "majority") -> None:
    """Raise ConfigError for an adaptive, strategy or budget option that cannot work."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    if top_up not in TOP_UPS:
        raise ConfigError(f"top_up must be one of {', '.join(TOP_UPS)}, got {top_up!r}")
    if settle not in SETTLE_RULES:
        raise ConfigError(f"settle must be one of {', '.join(SETTLE_RULES)}, got {settle!r}")
    for name, value in (("min_n", min_n), ("max_n", max_n)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
            raise ConfigError(f"{name} must be a whole number from 1 to {most}, got {value!r}")
    if adaptive and min_n > max_n:
        raise ConfigError(f"min_n ({min_n}) must not be above max_n ({max_n})")
    if adaptive and strategy == "first-valid":
        raise ConfigError('n="auto" and strategy="first-valid" do not go together: first-valid stops at '
                          "the first valid candidate of its n; pick one")
    if max_tokens_total is not None and (isinstance(max_tokens_total, bool) or not isinstance(max_tokens_total, int)
                                         or max_tokens_total < 1):
        raise ConfigError(f"max_tokens_total must be a whole number of tokens of at least 1, got {max_tokens_total!r}")


class Rounds:
    """Decides each round's size and when to stop; both runners drive it.

    ``agree(candidates)`` judges the candidates in hand (usable ones, in arrival order).
    """

    def __init__(self, fanning: Fanning, agree: Callable[[Sequence[Generated]], Agreement]) -> None:
        self.fanning = fanning
        self.agree = agree
        self.start = time.monotonic()

    def first(self) -> int:
        """How many candidates the first round asks for."""
        if not self.fanning.adaptive:
            return self.fanning.n
        return self.fanning.min_n

    def deadline_left(self) -> float | None:
        """Seconds of the call's deadline left for the next round (None: no deadline)."""
        if self.fanning.deadline is None:
            return None
        return self.fanning.deadline - (time.monotonic() - self.start)

    def next(self, generation: Generation, asked: int) -> int:
        """Record the round just run; the size of the next one, or 0 with ``generation.stop`` set."""
        fanning = self.fanning
        if not fanning.adaptive:
            if fanning.strategy != "best":
                generation.rounds.append({"asked": asked, "received": len(generation.candidates)})
            return 0
        before = sum(r["received"] for r in generation.rounds)
        generation.rounds.append({"asked": asked, "received": len(generation.candidates) - before})
        have = len(generation.candidates)
        if not generation.rounds[-1]["received"]:
            return self._stop(generation, "failed: the last round brought no candidate")
        if have >= fanning.max_n:  # no more to buy: the ranking decides, without a last look at agreement
            return self._stop(generation, f"max_n: {have} candidates")
        verdict = replace(self.agree(generation.candidates), rule=fanning.settle)
        if verdict.settled:
            return self._stop(generation, verdict.reason)
        left = self.deadline_left()
        if left is not None and left <= 0:
            return self._stop(generation, f"deadline: {fanning.deadline:g} s passed ({verdict.reason})")
        want = top_up_size(fanning.top_up, have, fanning.max_n)
        if fanning.max_tokens_total is not None:
            spent = tokens_of(generation.usage)
            # whole numbers only: an upstream may report more tokens than a float holds
            if spent > 0:
                affordable = (fanning.max_tokens_total - spent) * max(have, 1) // spent
            else:
                affordable = want if spent == 0 else 0
            if affordable < 1:
                return self._stop(generation, f"budget: {spent} of max_tokens_total {fanning.max_tokens_total} "
                                              f"spent ({verdict.reason})")
            want = min(want, affordable)
        return want

    @staticmethod
    def _stop(generation: Generation, why: str) -> int:
        generation.stop = why
        return 0


def top_up_size(top_up: str, have: int, max_n: int) -> int:
    """How many candidates a top-up asks for: the rest (``round``), as many again (``double``), or one (``step``)."""
    left = max_n - have
    if top_up == "round":
        return left
    return min(have if top_up == "double" else 1, left)


class FirstValid:
    """An ``accept`` for :func:`rerank.generate.generate`: true once a candidate is valid.

    Each candidate is judged once, as it arrives; ``found`` is the first valid one's index.
    """

    def __init__(self, valid: Callable[[Generated], bool]) -> None:
        self.valid = valid
        self.seen = 0
        self.found: int | None = None

    def __call__(self, generation: Generation) -> bool:
        for i in range(self.seen, len(generation.candidates)):
            self.seen = i + 1
            if self.valid(generation.candidates[i]):
                self.found = i
                return True
        return False


def _one_round(fanning: Fanning, want: int, left: float | None, accept: Accept | None,
               in_hand: int) -> dict[str, Any]:
    deadline = None if left is None else max(left, 1e-9)
    return dict(n=want, models=fanning.models, native_n=fanning.native_n, concurrency=fanning.concurrency,
                deadline=deadline, accept=accept, in_hand=in_hand)


def _accept(fanning: Fanning, valid: Callable[[Generated], bool] | None) -> FirstValid | None:
    return FirstValid(valid) if fanning.strategy == "first-valid" and valid is not None else None


def generate_rounds(body: Mapping[str, Any], send: Callable[[dict[str, Any]], Mapping[str, Any]], *, kind: Kind,
                    fanning: Fanning, agree: Callable[[Sequence[Generated]], Agreement],
                    valid: Callable[[Generated], bool] | None = None) -> Generation:
    """Generate a call's candidates round by round, from worker threads (see the module docstring)."""
    rounds, accept, total = Rounds(fanning, agree), _accept(fanning, valid), Generation()
    want = rounds.first()
    while want:
        part = generate(body, send, kind=kind, **_one_round(fanning, want, rounds.deadline_left(), accept,
                                                             len(total.candidates)))
        total.extend(part, round=len(total.rounds))
        want = rounds.next(total, want)
    _first_valid_stop(total, accept)
    return total


async def agenerate_rounds(body: Mapping[str, Any], send: Callable[[dict[str, Any]], Awaitable[Mapping[str, Any]]],
                           *, kind: Kind, fanning: Fanning, agree: Callable[[Sequence[Generated]], Agreement],
                           valid: Callable[[Generated], bool] | None = None) -> Generation:
    """The asyncio twin of :func:`generate_rounds`."""
    rounds, accept, total = Rounds(fanning, agree), _accept(fanning, valid), Generation()
    want = rounds.first()
    while want:
        part = await agenerate(body, send, kind=kind, **_one_round(fanning, want, rounds.deadline_left(), accept,
                                                                    len(total.candidates)))
        total.extend(part, round=len(total.rounds))
        want = rounds.next(total, want)
    _first_valid_stop(total, accept)
    return total


def _first_valid_stop(generation: Generation, accept: FirstValid | None) -> None:
    if accept is None:
        return
    received = len(generation.candidates)
    generation.stop = (f"first-valid: candidate {accept.found} of {received} received passes every gate"
                       if accept.found is not None else
                       f"first-valid: none of the {received} candidates received passes every gate")
