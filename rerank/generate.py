"""Candidate generation: ask an OpenAI-compatible endpoint for N answers to one request.

The plan (:class:`Planner`), shared by the sync and async runners:

1. Chat completions with ``n > 1``: one request per model asking for its share through the
   API's own ``n``. When fewer choices come back (a server that ignores ``n``), the missing
   ones are topped up with single requests; when the server rejects ``n``, that share is sent
   as single requests instead.
2. The Responses API has no ``n``: N single requests.
3. Requests run concurrently, at most ``concurrency`` at a time. With a ``deadline`` the
   runner stops waiting at that many seconds and keeps the candidates done by then (waiting
   on past the deadline only until the first one arrives).

The loop itself (:func:`fan_out` and its asyncio twin :func:`afan_out`) knows nothing about
requests: it runs jobs, hands each outcome to a callback that returns the follow-up jobs, or
:data:`STOP` to end early (how ``first-valid`` stops at its first valid candidate), and keeps
the deadline. ``best_of`` (:mod:`rerank.decorator`) and the adaptive rounds
(:mod:`rerank.adaptive`) run on the same loop.

The endpoint is reached through ``send(body) -> parsed JSON response``, which raises
:class:`~rerank.errors.SendError` for a request that failed; nothing here knows about HTTP
clients or SDKs, and what a response holds is read by :mod:`rerank.wire`.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterable, Mapping, Sequence, TypeVar

from .errors import ConfigError, InputError, SendError
from .types import Candidate
from .wire import KINDS, Kind, add_usage, candidates_of, rejects_n, split_usage

DEFAULT_CONCURRENCY = 8
MAX_CANDIDATES = 128
"""Largest N accepted: a guard against a typo fanning out thousands of paid requests."""


@dataclass(frozen=True)
class Generated:
    """One candidate: its assistant message, the response it came from and, for chat, its choice.

    ``usage`` is this candidate's share of its response's usage (a response holding k choices
    is split evenly over them); ``request`` numbers the request it came from, ``round`` the
    adaptive round (0 for the first).
    """

    message: dict[str, Any]
    response: Mapping[str, Any]
    choice: Mapping[str, Any] | None = None
    model: str | None = None
    usage: Mapping[str, Any] | None = None
    request: int = 0
    round: int = 0


@dataclass(frozen=True)
class Failure:
    """A request that produced no candidate, how many candidates it cost, and any usage it spent."""

    error: Exception
    count: int
    model: str | None = None
    usage: Mapping[str, Any] | None = None

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
    rounds: list[dict[str, Any]] = field(default_factory=list)
    """One entry per round of an adaptive or first-valid call: ``{"asked", "received", "stop"?}``."""
    stop: str | None = None
    """Why generation stopped, for adaptive and first-valid calls (e.g. ``agreed: same tool calls``)."""

    def failure_messages(self) -> tuple[str, ...]:
        """One message per failure, for :attr:`rerank.types.Ranking.failures`."""
        return tuple(f.message for f in self.failures)

    def extend(self, other: "Generation", *, round: int) -> None:
        """Add a later round's candidates, failures, usage and requests to this generation."""
        offset = self.requests
        self.candidates += [_renumber(g, offset, round) for g in other.candidates]
        self.failures += other.failures
        self.usage = add_usage(self.usage, other.usage)
        self.requests += other.requests
        self.n_unsupported |= other.n_unsupported


def _renumber(generated: Generated, offset: int, round: int) -> Generated:
    return Generated(generated.message, generated.response, generated.choice, generated.model, generated.usage,
                     generated.request + offset, round)


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
    body or a :class:`SendError`) and returns the follow-up requests it calls for. Options are
    checked by the caller (:func:`check_options`), once, before anything is sent.
    """

    def __init__(
        self, body: Mapping[str, Any], *, kind: Kind, n: int, models: Sequence[str] = (), native_n: bool = True,
    ) -> None:
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
        number = self.generation.requests
        self.generation.requests += 1
        if isinstance(outcome, SendError):
            if job.native and rejects_n(outcome):
                self.generation.n_unsupported.add(job.model)
                return [self._job(job.model, 1) for _ in range(job.want)]
            self.generation.failures.append(Failure(outcome, job.want, job.model))
            return []
        usage = outcome.get("usage")
        self.generation.usage = add_usage(self.generation.usage, usage)
        try:
            found = candidates_of(self.kind, outcome)
        except SendError as exc:
            self.generation.failures.append(Failure(exc, job.want, job.model, usage))
            return []
        found = found[: job.want]
        shares = split_usage(usage, len(found))
        self.generation.candidates += [Generated(message, outcome, choice, job.model, share, number)
                                       for (message, choice), share in zip(found, shares)]
        if len(found) < job.want:
            self.generation.n_unsupported.add(job.model)
        return [self._job(job.model, 1) for _ in range(job.want - len(found))]

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


# --- the loop, in its two twins --------------------------------------------------------------

J = TypeVar("J")


class _Stop:
    def __repr__(self) -> str:
        return "STOP"


STOP: Any = _Stop()
"""What a ``done`` callback returns to end the loop at once (the jobs still running are abandoned)."""

Done = Callable[[J, Any, "Exception | None"], "Sequence[J] | Any"]


def fan_out(first: Sequence[J], call: Callable[[J], Any], done: Done[J], *, concurrency: int,
            deadline: float | None = None, have: Callable[[], bool] = lambda: True) -> list[J]:
    """Run ``call(job)`` for every job in worker threads; return the jobs left unfinished.

    Each finished job goes to ``done(job, result, error)`` (``error`` an Exception, else None),
    which returns the follow-up jobs to run, or :data:`STOP`. With a ``deadline`` (seconds) the
    loop stops waiting then, unless ``have()`` says nothing usable is in hand yet: then it waits
    on for the next job. Jobs left unfinished keep their threads until they end; their results
    are dropped. A BaseException that is no Exception (KeyboardInterrupt) is raised again. A lone
    first job that nothing could cut short (no deadline, or nothing in hand) runs on the calling
    thread: no thread is started for a single request.
    """
    start = time.monotonic()
    if len(first) == 1 and (deadline is None or not have()):
        # One job the loop would wait for whatever the deadline (e.g. a native-n request): it runs
        # on this thread, and a worker thread starts only for follow-ups.
        job = first[0]
        try:
            result, error = call(job), None
        except Exception as exc:  # noqa: BLE001 - handed to done() as a worker's error would be
            result, error = None, exc
        follow_ups = done(job, result, error)
        if follow_ups is STOP or not follow_ups:
            return []
        first = list(follow_ups)
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="rerank-fan-out")
    pending: dict[Future[Any], J] = {}
    try:
        pending = {pool.submit(call, job): job for job in first}
        while pending:
            finished, _ = wait(pending, timeout=time_left(start, deadline, have), return_when=FIRST_COMPLETED)
            if not finished and have():
                break
            for future in finished:
                job = pending.pop(future)
                follow_ups = done(job, *_result(future))
                if follow_ups is STOP:
                    return list(pending.values())
                for follow_up in follow_ups:
                    pending[pool.submit(call, follow_up)] = follow_up
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return list(pending.values())


async def afan_out(first: Sequence[J], call: Callable[[J], Awaitable[Any]], done: Done[J], *, concurrency: int,
                   deadline: float | None = None, have: Callable[[], bool] = lambda: True) -> list[J]:
    """The asyncio twin of :func:`fan_out`: jobs run as tasks, and unfinished ones are cancelled."""
    start = time.monotonic()
    slots = asyncio.Semaphore(concurrency)

    async def run(job: J) -> Any:
        async with slots:
            return await call(job)

    pending = {asyncio.ensure_future(run(job)): job for job in first}
    try:
        while pending:
            finished, _ = await asyncio.wait(pending, timeout=time_left(start, deadline, have),
                                             return_when=asyncio.FIRST_COMPLETED)
            if not finished and have():
                break
            for task in finished:
                job = pending.pop(task)
                follow_ups = done(job, *_result(task))
                if follow_ups is STOP:
                    return list(pending.values())
                for follow_up in follow_ups:
                    pending[asyncio.ensure_future(run(follow_up))] = follow_up
    finally:
        for task in pending:
            task.cancel()
    return list(pending.values())


def time_left(start: float, deadline: float | None, have: Callable[[], bool]) -> float | None:
    """Seconds to wait for the next answer; None waits for as long as it takes."""
    if deadline is None:
        return None
    left = deadline - (time.monotonic() - start)
    if left <= 0 and not have():
        return None  # past the deadline with nothing in hand: wait for the first candidate
    return max(0.0, left)


def _result(finished: Any) -> tuple[Any, Exception | None]:
    error = finished.exception()
    if error is None:
        return finished.result(), None
    if isinstance(error, Exception):
        return None, error
    raise error


# --- N candidates from an endpoint -----------------------------------------------------------

Accept = Callable[[Generation], bool]
"""Looks at the candidates so far; True ends generation early (the rest are cancelled)."""


class _Recorder:
    """The ``done`` callback of a generation: the planner records, ``accept`` may stop early."""

    def __init__(self, planner: Planner, accept: Accept | None) -> None:
        self.planner = planner
        self.accept = accept
        self.stopped = False

    def __call__(self, job: Job, result: Any, error: Exception | None) -> Any:
        if error is not None and not isinstance(error, SendError):
            raise error
        follow_ups = self.planner.done(job, error if error is not None else result)
        if self.accept is not None and self.accept(self.planner.generation):
            self.stopped = True
            return STOP
        return follow_ups

    def finish(self, left: Sequence[Job], deadline: float | None) -> Generation:
        """The generation, with the requests the deadline cut off reported as failures."""
        if not self.stopped:  # requests cancelled because an early stop made them unneeded are no failure
            self.planner.abandon(left, deadline or 0)
        return self.planner.generation


def generate(
    body: Mapping[str, Any], send: Callable[[dict[str, Any]], Mapping[str, Any]], *, kind: Kind, n: int,
    models: Sequence[str] = (), native_n: bool = True, concurrency: int = DEFAULT_CONCURRENCY,
    deadline: float | None = None, accept: Accept | None = None, in_hand: int = 0,
) -> Generation:
    """Generate ``n`` candidates for ``body`` with ``send``, from worker threads.

    Requests still running at the deadline, or once ``accept(generation)`` is true, are left to
    finish in the background; their answers are dropped. Past the deadline the runner waits
    on for a first candidate unless ``in_hand`` (candidates of earlier rounds) is above 0.
    Exceptions other than :class:`SendError` propagate. The options are the caller's to check
    (:func:`check_options`), once, before anything is sent.
    """
    planner = Planner(body, kind=kind, n=n, models=models, native_n=native_n)
    recorder = _Recorder(planner, accept)
    left = fan_out(planner.start(), lambda job: send(job.body), recorder, concurrency=concurrency,
                   deadline=deadline, have=lambda: in_hand > 0 or bool(planner.generation.candidates))
    return recorder.finish(left, deadline)


async def agenerate(
    body: Mapping[str, Any], send: Callable[[dict[str, Any]], Awaitable[Mapping[str, Any]]], *, kind: Kind,
    n: int, models: Sequence[str] = (), native_n: bool = True, concurrency: int = DEFAULT_CONCURRENCY,
    deadline: float | None = None, accept: Accept | None = None, in_hand: int = 0,
) -> Generation:
    """Generate ``n`` candidates for ``body`` with the coroutine ``send``, as asyncio tasks.

    Requests still running at the deadline, or once ``accept(generation)`` is true, are cancelled.
    """
    planner = Planner(body, kind=kind, n=n, models=models, native_n=native_n)
    recorder = _Recorder(planner, accept)
    left = await afan_out(planner.start(), lambda job: send(job.body), recorder, concurrency=concurrency,
                          deadline=deadline, have=lambda: in_hand > 0 or bool(planner.generation.candidates))
    return recorder.finish(left, deadline)


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
            generation.failures.append(Failure(error, 1, generated.model, generated.usage))
            continue
        usable.append(generated)
    generation.candidates = usable
