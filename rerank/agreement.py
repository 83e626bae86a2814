"""Whether the candidates in hand already agree, by the task's own notion of agreement.

Adaptive N (:mod:`rerank.adaptive`) asks for a few candidates first and stops when they agree
and pass every gate. What "agree" means follows the request's profile, as its scorers compare:

- tools: the same tool calls, parsed and canonical (as ``tool-consensus`` compares them);
- json: the same JSON leaves (as ``json-consensus`` compares them);
- code-exec: the same outputs on the execution probes (as ``execution`` compares them);
- code: programs of nearly the same tokens (``code-consensus`` at :data:`CODE_THRESHOLD` or more);
- chat and grounded: the same short final answer (a number, a choice letter, a short span)
  when every candidate has one, else texts whose embeddings are closer than :data:`TEXT_THRESHOLD`.

Two rules say when the candidates in hand have agreed (``settle``), both on the largest group
of gate-passing candidates that agree with one of them (the leader) and the largest group
outside it (the runner-up):

- ``majority`` (the default): the leader holds at least two candidates and more than half of
  all candidates in hand (2 of 2, 2 of 3, 3 of 4...);
- ``confident``: the leader holds at least two, and the probability that it is the likelier
  answer of the two, their shares uniform a priori, reaches :data:`CONFIDENCE` (Aggarwal et al.
  2023, "Let's Sample Step by Step: Adaptive-Consistency for Efficient Reasoning", the Beta
  criterion): 4 of 4, 6 of 7 with one dissent, never 2 of 2 or 3 of 3.

Nothing here reads labels; the same function decides in the middleware and in the offline
replay of the benchmark.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from .reranker import Reranker
from .scorers.code import code_tokens, multiset_jaccard
from .scorers.embedding import EmbeddingRelevance
from .scorers.execution import ExecutionConsensus
from .scorers.json_consensus import leaves
from .scorers.tool_consensus import ToolConsensus
from .toolcalls import canonical_json
from .types import Candidate, Check, Request
from .validators.json_validators import extract_json

CODE_THRESHOLD = 0.8
"""Token overlap (multiset Jaccard) at which two programs count as the same solution."""
TEXT_THRESHOLD = 0.95
"""Embedding cosine at which two open-text answers count as saying the same. Kept high on purpose:
on open text (summaries, chat answers) close embeddings say little about which answer is right
(on faithbench-dev, stopping at 0.9 kept 29% of the full pool's gain), so adaptive N should
rarely stop early there."""
SETTLE_RULES = ("majority", "confident")
"""When the candidates in hand count as agreed (see :attr:`Agreement.settled`)."""
CONFIDENCE = 0.95
"""The ``confident`` rule's bar: the leading group is the likelier answer with this probability.
0.95 is the Adaptive-Consistency paper's own setting and matches the share of the full pool's
gain adaptive N is meant to keep (issue 14); it was chosen before measuring, not fitted."""
SHORT_ANSWER_WORDS = 5
"""An answer of at most this many words is itself a final answer."""

_FINAL = re.compile(
    r"(?:final answer|the answer|answer|result)\s*(?:is|:|=)\s*[*(\[]*([A-Za-z]|[-+]?\d[\d,]*(?:\.\d+)?)\b",
    re.IGNORECASE,
)
_BOXED = re.compile(r"\\boxed\{([^{}]{1,60})\}|^####\s*(.{1,60})$", re.MULTILINE)


@dataclass(frozen=True)
class Agreement:
    """How far the candidates in hand agree: the largest agreeing group that passes every gate."""

    notion: str
    """What was compared, e.g. ``same tool calls``."""
    group: tuple[int, ...]
    """Indexes of the largest group of gate-passing candidates that agree with one of them."""
    of: int
    """Candidates looked at."""
    runner_up: int = 0
    """Size of the largest agreeing group among the gate-passing candidates outside ``group``."""
    rule: str = "majority"
    """The rule :attr:`settled` applies, one of :data:`SETTLE_RULES`."""

    @property
    def confidence(self) -> float:
        """How sure the candidates in hand make the leading group: the probability that it is more
        likely than the runner-up, their shares uniform a priori (Beta(lead+1, runner_up+1) > 1/2,
        the Adaptive-Consistency criterion of Aggarwal et al. 2023)."""
        return beta_above_half(len(self.group), self.runner_up)

    @property
    def settled(self) -> bool:
        """Whether to stop buying candidates. ``majority``: at least two, and more than half of the
        candidates in hand, agree and pass every gate. ``confident``: at least two agree and pass,
        and :attr:`confidence` reaches :data:`CONFIDENCE`."""
        if len(self.group) < 2:
            return False
        if self.rule == "confident":
            return self.confidence >= CONFIDENCE
        return 2 * len(self.group) > self.of

    @property
    def reason(self) -> str:
        """One line for the ranking: ``agreed: 2 of 2 candidates, same tool calls``."""
        verdict = "agreed" if self.settled else "no agreement"
        line = f"{verdict}: {len(self.group)} of {self.of} candidates passing every gate, {self.notion}"
        if self.rule == "confident":
            line += f"; confidence {self.confidence:.3f} (next largest group {self.runner_up})"
        return line


def beta_above_half(lead: int, runner_up: int) -> float:
    """P(X > 1/2) for X ~ Beta(lead + 1, runner_up + 1), exactly: P(Binomial(lead + runner_up + 1, 1/2) <= lead)."""
    trials = lead + runner_up + 1
    return sum(math.comb(trials, k) for k in range(lead + 1)) / (1 << trials)


def gates_passed(reranker: Reranker, request: Request, candidates: Sequence[Candidate]) -> list[bool]:
    """Whether each candidate passes every validator the reranker runs on this request."""
    _, _, validators = reranker.plan(request)
    passed = [True] * len(candidates)
    for validator in validators:
        for i, check in enumerate(validator.check_pool(request, candidates)):
            passed[i] = passed[i] and check.passed
    return passed


def passed_all(checks: Sequence[Sequence[Check]]) -> list[bool]:
    """Whether each candidate passed all of its checks (measured checks, e.g. from ``Reranker.measure``)."""
    return [all(c.passed for c in cs) for cs in checks]


def agreement(reranker: Reranker, request: Request, candidates: Sequence[Candidate],
              passed: Sequence[bool]) -> Agreement:
    """How far ``candidates`` agree by the notion of ``request``'s profile; ``passed``: their gates.
    The verdict's ``rule`` is the default; a caller with another sets it (``dataclasses.replace``)."""
    notion, similar = _notion(reranker, request, candidates)
    best = _largest_group([i for i in range(len(candidates)) if passed[i]], similar)
    runner_up = _largest_group([i for i in range(len(candidates)) if passed[i] and i not in best], similar)
    return Agreement(notion, best, len(candidates), len(runner_up))


def _largest_group(members: Sequence[int], similar: Similar) -> tuple[int, ...]:
    """The largest group of ``members`` agreeing with one of them (the first such, in order)."""
    best: tuple[int, ...] = ()
    for i in members:
        group = tuple(j for j in members if i == j or similar(i, j))
        if len(group) > len(best):
            best = group
    return best


Similar = Callable[[int, int], bool]


def _notion(reranker: Reranker, request: Request, candidates: Sequence[Candidate]) -> tuple[str, Similar]:
    profile, weighted, _ = reranker.plan(request)
    scorers = [scorer for scorer, _ in weighted]
    if profile.name == "tools":
        calls = [sorted(canonical_json(call) for call in ToolConsensus.calls_of(request, c)) for c in candidates]
        return "same tool calls", _same(calls)
    if profile.name == "json":
        return "same JSON leaves", _same([_json_leaves(c) for c in candidates])
    executing = next((s for s in scorers if isinstance(s, ExecutionConsensus)), None)
    if profile.name == "code-exec" and executing is not None:
        outputs = executing.outputs(request, candidates)
        keys = [tuple(row) if row and any(r is not None for r in row) else None for row in outputs]
        return "same probe outputs", _same(keys)
    if profile.name in ("code", "code-exec"):
        tokens = [code_tokens(request, c) for c in candidates]
        return (f"code tokens overlap {CODE_THRESHOLD:g} or more",
                lambda i, j: multiset_jaccard(tokens[i], tokens[j]) >= CODE_THRESHOLD)
    answers = [final_answer(c.text) for c in candidates]
    if all(a is not None for a in answers):
        return "same final answer", _same(answers)
    embedding = next((s for s in scorers if isinstance(s, EmbeddingRelevance)), None)
    if embedding is not None:
        vectors = embedding.embedder.encode([c.text for c in candidates])
        similarity = np.asarray(vectors) @ np.asarray(vectors).T
        return (f"text embeddings {TEXT_THRESHOLD:g} or closer",
                lambda i, j: bool(similarity[i, j] >= TEXT_THRESHOLD))
    words = [set(c.text.lower().split()) for c in candidates]
    return (f"word overlap {TEXT_THRESHOLD:g} or more",
            lambda i, j: len(words[i] & words[j]) >= TEXT_THRESHOLD * max(len(words[i] | words[j]), 1))


def _same(keys: Sequence[Any]) -> Similar:
    """Equal keys agree; a candidate without a key (no JSON, no output) agrees with nothing."""
    return lambda i, j: keys[i] is not None and keys[i] == keys[j]


def _json_leaves(candidate: Candidate) -> frozenset[tuple[str, str]] | None:
    value, error = extract_json(candidate.content or "")
    return None if error else frozenset(leaves(value))


def final_answer(text: str) -> str | None:
    """The short final answer a text gives, normalised, or None: the whole text when it is a few
    words, else a closing ``answer is X`` / ``\\boxed{X}`` / ``#### X``."""
    stripped = text.strip()
    if not stripped:
        return None
    if len(stripped.split()) <= SHORT_ANSWER_WORDS and len(stripped) <= 80:
        return _normalise(stripped)
    marked = [m.group(1) or m.group(2) for m in _BOXED.finditer(stripped)]
    if marked:
        return _normalise(marked[-1])
    stated = _FINAL.findall(stripped)
    return _normalise(stated[-1]) if stated else None


def _normalise(answer: str) -> str:
    answer = answer.strip().strip(".!*()[] ").lower().replace(",", "")
    return " ".join(answer.split())
