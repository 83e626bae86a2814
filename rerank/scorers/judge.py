"""Judge: an LLM reads the query and every candidate and names the best (optional; costs a call).

Never on by default. ``rerank.wrap(client, judge=True)`` adds it to every profile, asking the
same model as the call (or ``judge_model``) through the unwrapped client. The candidates are
shown in an order shuffled by a seed derived from the pool, so a judge's bias for the first or
last position does not always favour the same input position. A failed call or an answer that
names no candidate costs the judge's vote (every candidate scores 0), never the request.
"""

from __future__ import annotations

import hashlib
import random
import re
from typing import Any, Sequence

from ..errors import ConfigError
from ..types import Candidate, Request
from .base import Paid, Scorer

MAX_CANDIDATE_CHARS = 6_000
"""Each candidate is cut to this many characters in the judge's prompt."""

PROMPT = """You are an impartial judge. Read the user's request and the {count} candidate answers, then \
decide which answer best does exactly what the request asks: follows every explicit instruction, \
is correct and relevant, and is helpful. Do not prefer an answer for being longer, more polished, \
or for its position.

# Request
{query}

{answers}

Reply with the number of the best answer in double brackets, for example [[1]], and nothing else."""

_CHOICE = re.compile(r"\[\[\s*(\d+)\s*\]\]")
_LONE_NUMBER = re.compile(r"^\W*(\d+)\W*$")


class LLMJudge(Scorer):
    """1 for the candidate a model names as the best (listwise, positions shuffled), 0 for the rest.

    ``client`` is a synchronous ``openai.OpenAI`` client (never a wrapped one: a judge call must
    not fan out); ``model`` the model to ask, else the request's own model.
    """

    name = "judge"
    min_spread = 0.5
    min_candidates = 2

    def __init__(self, *, client: Any = None, model: str | None = None, max_tokens: int = 16) -> None:
        if client is None or not hasattr(client, "chat"):
            raise ConfigError("the judge scorer asks a model: give it a client, e.g. "
                              "rerank.wrap(OpenAI(), judge=True) or LLMJudge(client=OpenAI(), model=...)")
        self.client = client
        self.model = model
        self.max_tokens = max_tokens

    @staticmethod
    def order(request: Request, candidates: Sequence[Candidate]) -> list[int]:
        """The input positions in the order the judge is shown them (seeded by the pool itself)."""
        digest = hashlib.sha256("\x00".join([request.query, *(c.text for c in candidates)]).encode(
            "utf-8", "surrogatepass")).digest()
        order = list(range(len(candidates)))
        random.Random(int.from_bytes(digest[:8], "big")).shuffle(order)
        return order

    def prompt(self, request: Request, candidates: Sequence[Candidate], order: Sequence[int]) -> str:
        """The judge's prompt: the request, then the candidates numbered from 1 in ``order``."""
        answers = "\n\n".join(f"# Answer [{shown}]\n{candidates[i].text[:MAX_CANDIDATE_CHARS]}"
                              for shown, i in enumerate(order, start=1))
        return PROMPT.format(count=len(order), query=request.query, answers=answers)

    def score(self, request: Request, candidates: Sequence[Candidate]) -> Paid:
        n = len(candidates)
        model = self.model or request.model
        if model is None:
            return Paid([0.0] * n, 0, failures=("judge: no model to ask (give judge_model=)",))
        order = self.order(request, candidates)
        try:
            response = self.client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": self.prompt(request, candidates, order)}],
                temperature=0, max_tokens=self.max_tokens,
            )
        except Exception as exc:  # noqa: BLE001 - a failed judge costs its vote, never the request
            return Paid([0.0] * n, 1, failures=(f"judge call failed: {type(exc).__name__}: {exc}"[:500],))
        usage = response.usage.model_dump(exclude_none=True) if getattr(response, "usage", None) else None
        text = (response.choices[0].message.content or "") if response.choices else ""
        shown = choice_of(text, n)
        if shown is None:
            return Paid([0.0] * n, 1, usage, (f"judge answer names no candidate: {text[:200]!r}",))
        scores = [0.0] * n
        scores[order[shown - 1]] = 1.0
        return Paid(scores, 1, usage)


def choice_of(text: str, count: int) -> int | None:
    """The 1-based answer number a judge's reply names (``[[k]]`` or a lone number), if valid."""
    match = _CHOICE.search(text) or _LONE_NUMBER.match(text.strip())
    if match is None:
        return None
    shown = int(match.group(1))
    return shown if 1 <= shown <= count else None
