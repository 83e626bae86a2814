"""Candidate generation: ask an OpenAI-compatible endpoint for N answers to one request.

The plan, shared by the sync and async runners:

1. Chat completions with ``n > 1``: one request per model asking for its share through the
   API's own ``n``. When fewer choices come back (a server that ignores ``n``), the missing
   ones are topped up with single requests; when the server rejects ``n``, that share is sent
   as single requests instead.
2. The Responses API has no ``n``: N single requests.
3. Requests run concurrently, at most ``concurrency`` at a time. With a ``deadline`` the
   runner stops waiting at that many seconds and keeps the candidates done by then (waiting
   on past the deadline only until the first one arrives).

The endpoint is reached through ``send(body) -> parsed JSON response``, which raises
:class:`~rerank.errors.SendError` for a request that failed; nothing here knows about HTTP
clients or SDKs, and what a response holds is read by :mod:`rerank.wire`.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterable, Mapping, Sequence

from .errors import ConfigError, InputError, SendError
from .types import Candidate
from .wire import KINDS, Kind, add_usage, candidates_of, rejects_n

DEFAULT_CONCURRENCY = 8
MAX_CANDIDATES = 128
"""Largest N accepted: a guard against a typo fanning out thousands of paid requests."""


@dataclass(frozen=True)
class Generated:
    """One candidate: its assistant message, the response it came from and, for chat, its choice."""

    message: dict[str, Any]
    response: Mapping[str, Any]
    choice: Mapping[str, Any] | None = None
    model: str | None = None


@dataclass(frozen=True)
class Failure:
    """A request that produced no candidate, and how many candidates it cost."""

    error: Exception
    count: int
    model: str | None = None

    @property
    def message(self) -> str:
        """One line for a person: which model, how many candidates, what went wrong."""
        lost = f"{self.count} candidate{'s' if self.count != 1 else ''}"
        where = f" from {self.model}" if self.model else ""
        return f"{lost}{where} failed: {self.error}"


@dataclass
class Generation:
    """Everything generated for one request: candidates in arrival order, failures, usage summed."""

    candidates: list[Generated] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    usage: dict[str, Any] | None = None
    requests: int = 0
    """Requests answered (successfully or not); their usage is in ``usage``."""
    n_unsupported: set[str | None] = field(default_factory=set)
    """Models whose server rejected ``n`` or answered it with fewer choices."""

    def failure_messages(self) -> tuple[str, ...]:
        """One message per failure, for :attr:`rerank.types.Ranking.failures`."""
        return tuple(f.message for f in self.failures)


@dataclass(frozen=True)
class Job:
    """One request to send: its body, how many candidates it should bring, whether through ``n``."""

    body: dict[str, Any]
    want: int
    native: bool
    model: str | None


class Planner:
    """Decides which requests to send for N candidates; both runners drive it.

    ``start()`` gives the first requests; ``done(job, outcome)`` records an answer (a response
    body or a :class:`SendError`) and returns the follow-up requests it calls for.
    """

    def __init__(
        self, body: Mapping[str, Any], *, kind: Kind, n: int, models: Sequence[str] = (), native_n: bool = True,
    ) -> None:
        check_options(kind=kind, n=n, models=models)
        self.body = {k: v for k, v in body.items() if k != "n"}
        self.kind = kind
        self.n = n
        self.models: list[str | None] = [*models] or [body.get("model")]
        self.native_n = native_n and kind == "chat"
        self.generation = Generation()

    def start(self) -> list[Job]:
        """The first requests: each model's share, through ``n`` where the API has it."""
        shares = [self.n // len(self.models) + (i < self.n % len(self.models)) for i in range(len(self.models))]
        jobs: list[Job] = []
        for model, share in zip(self.models, shares):
            if share > 1 and self.native_n:
                jobs.append(self._job(model, share))
            else:
                jobs += [self._job(model, 1) for _ in range(share)]
        return jobs

    def _job(self, model: str | None, want: int) -> Job:
        body = dict(self.body)
        if model is not None:
            body["model"] = model
        if want > 1:
            body["n"] = want
        return Job(body=body, want=want, native=want > 1, model=model)

    def done(self, job: Job, outcome: Mapping[str, Any] | SendError) -> list[Job]:
        """Record one answer; return the requests still needed for this job's share."""
        self.generation.requests += 1
        if isinstance(outcome, SendError):
            if job.native and rejects_n(outcome):
                self.generation.n_unsupported.add(job.model)
                return [self._job(job.model, 1) for _ in range(job.want)]
            self.generation.failures.append(Failure(outcome, job.want, job.model))
            return []
        self.generation.usage = add_usage(self.generation.usage, outcome.get("usage"))
        try:
            found = candidates_of(self.kind, outcome)
        except SendError as exc:
            self.generation.failures.append(Failure(exc, job.want, job.model))
            return []
        kept = [Generated(message, outcome, choice, job.model) for message, choice in found[: job.want]]
        self.generation.candidates += kept
        if len(kept) < job.want:
            self.generation.n_unsupported.add(job.model)
        return [self._job(job.model, 1) for _ in range(job.want - len(kept))]

    def abandon(self, jobs: Iterable[Job], deadline: float) -> None:
        """Report the requests still running when the deadline ended the wait."""
        for job in jobs:
            error = SendError(f"not finished within the deadline of {deadline:g} s")
            self.generation.failures.append(Failure(error, job.want, job.model))


def check_options(*, kind: str, n: int, models: Sequence[str] = (), concurrency: int = 1,
                  deadline: float | None = None) -> None:
    """Raise ConfigError for a generation option that cannot work, saying what would."""
    if kind not in KINDS:
        raise ConfigError(f"unknown API kind {kind!r}: use one of {', '.join(KINDS)}")
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_CANDIDATES:
        raise ConfigError(f"n must be a whole number from 1 to {MAX_CANDIDATES}, got {n!r}")
    if isinstance(models, str) or not all(isinstance(m, str) and m for m in models):
        raise ConfigError(f"models must be a list of model names, got {models!r}")
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigError(f"concurrency must be a whole number of at least 1, got {concurrency!r}")
    if deadline is not None and (isinstance(deadline, bool) or not isinstance(deadline, (int, float))
                                 or not deadline > 0):
        raise ConfigError(f"deadline must be a positive number of seconds or None, got {deadline!r}")


def generate(
    body: Mapping[str, Any], send: Callable[[dict[str, Any]], Mapping[str, Any]], *, kind: Kind, n: int,
    models: Sequence[str] = (), native_n: bool = True, concurrency: int = DEFAULT_CONCURRENCY,
    deadline: float | None = None,
) -> Generation:
    """Generate ``n`` candidates for ``body`` with ``send``, from worker threads.

    Requests still running at the deadline are left to finish in the background; their
    answers are dropped. Exceptions other than :class:`SendError` propagate.
    """
    check_options(kind=kind, n=n, models=models, concurrency=concurrency, deadline=deadline)
    planner = Planner(body, kind=kind, n=n, models=models, native_n=native_n)
    start = time.monotonic()
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="rerank-generate")
    pending: dict[Future[Mapping[str, Any]], Job] = {}
    try:
        pending = {pool.submit(send, job.body): job for job in planner.start()}
        while pending:
            timeout = _time_left(start, deadline, planner.generation)
            finished, _ = wait(pending, timeout=timeout, return_when=FIRST_COMPLETED)
            if not finished and planner.generation.candidates:
                break
            for future in finished:
                job = pending.pop(future)
                for follow_up in planner.done(job, _outcome(future.exception, future.result)):
                    pending[pool.submit(send, follow_up.body)] = follow_up
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    planner.abandon(pending.values(), deadline or 0)
    return planner.generation


async def agenerate(
    body: Mapping[str, Any], send: Callable[[dict[str, Any]], Awaitable[Mapping[str, Any]]], *, kind: Kind,
    n: int, models: Sequence[str] = (), native_n: bool = True, concurrency: int = DEFAULT_CONCURRENCY,
    deadline: float | None = None,
) -> Generation:
    """Generate ``n`` candidates for ``body`` with the coroutine ``send``, as asyncio tasks.

    Requests still running at the deadline are cancelled.
    """
    check_options(kind=kind, n=n, models=models, concurrency=concurrency, deadline=deadline)
    planner = Planner(body, kind=kind, n=n, models=models, native_n=native_n)
    start = time.monotonic()
    slots = asyncio.Semaphore(concurrency)

    async def run(job: Job) -> Mapping[str, Any]:
        async with slots:
            return await send(job.body)

    pending = {asyncio.ensure_future(run(job)): job for job in planner.start()}
    try:
        while pending:
            timeout = _time_left(start, deadline, planner.generation)
            finished, _ = await asyncio.wait(pending, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if not finished and planner.generation.candidates:
                break
            for task in finished:
                job = pending.pop(task)
                for follow_up in planner.done(job, _outcome(task.exception, task.result)):
                    pending[asyncio.ensure_future(run(follow_up))] = follow_up
    finally:
        for task in pending:
            task.cancel()
    planner.abandon(pending.values(), deadline or 0)
    return planner.generation


def _time_left(start: float, deadline: float | None, generation: Generation) -> float | None:
    """Seconds to wait for the next answer; None waits for as long as it takes."""
    if deadline is None:
        return None
    left = deadline - (time.monotonic() - start)
    if left <= 0 and not generation.candidates:
        return None  # past the deadline with nothing in hand: wait for the first candidate
    return max(0.0, left)


def _outcome(exception: Callable[[], BaseException | None], result: Callable[[], Any]) -> Any:
    error = exception()
    if error is None:
        return result()
    if isinstance(error, SendError):
        return error
    raise error


def drop_unusable(generation: Generation) -> None:
    """Move candidates the reranker would refuse (e.g. malformed tool calls) to the failures.

    The failure's SendError carries the response body the candidate came from as ``upstream``.
    """
    usable = []
    for generated in generation.candidates:
        try:
            Candidate.coerce(generated.message)
        except InputError as exc:
            error = SendError(f"unusable candidate: {exc}", upstream=generated.response)
            generation.failures.append(Failure(error, 1, generated.model))
            continue
        usable.append(generated)
    generation.candidates = usable
