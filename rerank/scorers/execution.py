"""Execution consensus: run every candidate on the same probe inputs and reward agreeing behaviour.

Programs that compute the same outputs on many inputs are likely right together (minimum Bayes
risk over behaviour, as in MBR-exec and CodeT). Candidate code runs only in the sandbox, and this
scorer runs only where it is named or where the user turned on ``python-doctest``; like that
validator it refuses to be built where the sandbox cannot isolate code, unless ``unsafe_exec``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..fenced_code import extract_code
from ..isolation import require_isolation
from ..probes import probe_calls
from ..python_checks import entry_point_of
from ..sandbox import load_and_call
from ..types import Candidate, Request
from .base import AGREEMENT_MIN_CANDIDATES, Scorer

RAN_KEPT = 2048
"""Programs whose probe outputs an :class:`ExecutionConsensus` keeps (the least recently used go first)."""


class ExecutionConsensus(Scorer):
    """Share of probe inputs on which each candidate's output equals other candidates' outputs.

    Inputs on which fewer than half the candidates return a value are left out (likely invalid
    inputs for this function). ``probes`` inputs per pool, ``timeout`` seconds per call, ``jobs``
    sandboxed processes at once. ``unsafe_exec`` allows running candidates unisolated where the
    sandbox cannot isolate them (otherwise construction raises :class:`~rerank.errors.SandboxError`).
    """

    name = "execution"
    min_spread = 0.02
    min_candidates = AGREEMENT_MIN_CANDIDATES

    def __init__(self, *, probes: int = 24, timeout: float = 1.0, memory_mb: int = 512, jobs: int = 2,
                 unsafe_exec: bool = False) -> None:
        require_isolation(unsafe_exec)
        self.unsafe_exec = unsafe_exec
        self.probes = probes
        self.timeout = timeout
        self.memory_mb = memory_mb
        self.jobs = jobs
        # Each program's outputs on its probes, kept for later looks at a growing pool (adaptive N
        # judges the candidates in hand after every round, then ranks them): each runs once.
        self._ran: OrderedDict[tuple[str, str, tuple[str, ...]], list[str | None]] = OrderedDict()
        self._lock = threading.Lock()

    def applies(self, request: Request) -> bool:
        return entry_point_of(request.query) is not None

    def outputs(self, request: Request, candidates: Sequence[Candidate]) -> list[list[str | None]]:
        """The repr of each candidate's result on each probe (None where it raised or timed out)."""
        entry = entry_point_of(request.query)
        calls = probe_calls(request.query, entry, count=self.probes) if entry else []
        if not calls:
            return [[] for _ in candidates]

        def run(candidate: Candidate) -> list[str | None]:
            code = extract_code(candidate.content or "")
            key = (code, entry or "", tuple(calls))
            with self._lock:
                if key in self._ran:
                    self._ran.move_to_end(key)
                    return list(self._ran[key])
            outcome = load_and_call(code, calls, entry_point=entry, timeout=self.timeout, memory_mb=self.memory_mb,
                                    unsafe_exec=self.unsafe_exec)
            results = list(outcome.results)
            with self._lock:
                self._ran[key] = results
                while len(self._ran) > RAN_KEPT:
                    self._ran.popitem(last=False)
            return list(results)

        with ThreadPoolExecutor(max_workers=self.jobs) as pool:
            return list(pool.map(run, candidates))

    def score(self, request: Request, candidates: Sequence[Candidate]) -> list[float]:
        results = self.outputs(request, candidates)
        n = len(candidates)
        if n < 2 or not results[0]:
            return [0.0] * n
        table = np.array(results, dtype=object)  # candidates x probes
        answered = np.array([[r is not None for r in row] for row in results])
        informative = answered.sum(axis=0) * 2 >= n
        if not informative.any():
            return [0.0] * n
        agree = np.zeros(n)
        for i in range(n):
            for j in range(n):
                if i != j:
                    same = [(table[i, k] is not None and table[i, k] == table[j, k]) for k in np.flatnonzero(informative)]
                    agree[i] += np.mean(same)
        scores: list[float] = (agree / (n - 1)).tolist()
        return scores
