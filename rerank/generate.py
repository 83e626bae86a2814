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
:class:`SendError` for a request that failed; nothing here knows about HTTP clients or SDKs.
This module also holds what the rest of rerank needs to know about the two wire formats:
the candidates a response holds and the :class:`~rerank.types.Request` a body describes.
"""

from __future__ import annotations

import asyncio
import re
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterable, Literal, Mapping, Sequence

from .errors import ConfigError
from .types import Request

Kind = Literal["chat", "responses"]
KINDS: tuple[Kind, ...] = ("chat", "responses")

DEFAULT_CONCURRENCY = 8
MAX_CANDIDATES = 128
"""Largest N accepted: a guard against a typo fanning out thousands of paid requests."""


class SendError(Exception):
    """One request failed: an HTTP error status, a transport error or a body that is no response.

    ``status`` and ``body`` describe an HTTP error answer (``body`` parsed as JSON when it is);
    ``upstream`` is whatever the caller wants back when every request fails (the middleware
    keeps the HTTP response or exception there, to hand the SDK exactly what it would have got).
    """

    def __init__(self, message: str, *, status: int | None = None, body: Any = None, upstream: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body
        self.upstream = upstream


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
        self.models = list(models) or [body.get("model")]
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
    pending: dict[Future, Job] = {}
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


_N_WORD = re.compile(r"(?<![\w-])['\"`]?n['\"`]?(?![\w-])")


def rejects_n(error: SendError) -> bool:
    """Whether an error answer says the server does not support the ``n`` parameter."""
    if error.status not in (400, 422):
        return False
    detail = error.body.get("error") if isinstance(error.body, Mapping) else None
    if isinstance(detail, Mapping):
        if detail.get("param") == "n":
            return True
        message = detail.get("message")
    else:
        message = error.body if isinstance(error.body, str) else None
    return isinstance(message, str) and bool(_N_WORD.search(message))


def add_usage(total: Any, usage: Any) -> Any:
    """The field-by-field sum of two usage objects (nested token details included)."""
    if usage is None:
        return total
    if total is None:
        return usage
    if isinstance(total, Mapping) and isinstance(usage, Mapping):
        return {key: add_usage(total.get(key), usage.get(key)) for key in {**total, **usage}}
    if isinstance(total, (int, float)) and isinstance(usage, (int, float)) and not isinstance(total, bool):
        return total + usage
    return total


# --- the two wire formats -------------------------------------------------------------------


def candidates_of(kind: Kind, body: Mapping[str, Any]) -> list[tuple[dict[str, Any], Mapping[str, Any] | None]]:
    """The (assistant message, chat choice or None) pairs one response body holds.

    Raises SendError for a body that is not a response of that kind.
    """
    if not isinstance(body, Mapping):
        raise SendError(f"the response is not a JSON object but {type(body).__name__}")
    if kind == "chat":
        choices = body.get("choices")
        if not isinstance(choices, list) or not choices:
            raise SendError('the response has no "choices": it is not a chat completion')
        found = []
        for choice in choices:
            message = choice.get("message") if isinstance(choice, Mapping) else None
            if not isinstance(message, Mapping):
                raise SendError('a choice of the response has no "message" object')
            found.append(({"content": message.get("content"), "tool_calls": message.get("tool_calls") or []}, choice))
        return found
    output = body.get("output")
    if not isinstance(output, list):
        raise SendError('the response has no "output" list: it is not a Responses API response')
    return [(response_message(output), None)]


def response_message(output: Sequence[Any]) -> dict[str, Any]:
    """The assistant message a Responses API ``output`` list amounts to: its text and function calls."""
    texts, calls = [], []
    for item in output:
        if not isinstance(item, Mapping):
            continue
        if item.get("type") == "message":
            for part in item.get("content") or ():
                if isinstance(part, Mapping) and part.get("type") == "output_text":
                    texts.append(str(part.get("text") or ""))
        elif item.get("type") == "function_call":
            calls.append({"id": item.get("call_id"), "type": "function",
                          "function": {"name": item.get("name"), "arguments": item.get("arguments") or "{}"}})
    return {"content": "".join(texts) if texts else None, "tool_calls": calls}


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(part.get("text")) for part in content
                         if isinstance(part, Mapping) and isinstance(part.get("text"), str))
    return ""


def messages_of(kind: Kind, body: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The (role, text) of every message in a request body, in order (instructions first)."""
    if kind == "chat":
        items = body.get("messages") or []
        return [(str(m.get("role")), _text(m.get("content"))) for m in items if isinstance(m, Mapping)]
    found = [("system", body["instructions"])] if isinstance(body.get("instructions"), str) else []
    items = body.get("input")
    if isinstance(items, str):
        return found + [("user", items)]
    for item in items or ():
        if isinstance(item, Mapping) and item.get("type", "message") == "message":
            found.append((str(item.get("role")), _text(item.get("content"))))
    return found


def query_of(kind: Kind, body: Mapping[str, Any]) -> str:
    """The last user message of a request body: what the candidates answer."""
    users = [text for role, text in messages_of(kind, body) if role == "user"]
    return users[-1] if users else ""


SYSTEM_MESSAGES = "system messages"
"""The default ``context`` of :func:`request_of`: the body's system (and developer) messages."""


def request_of(kind: Kind, body: Mapping[str, Any], *,
               context: str | None = SYSTEM_MESSAGES) -> tuple[Request, tuple[str, ...]]:
    """The Request the scorers get for a body, and the validators its ``json_object`` format needs.

    The query is the last user message; the context is ``context`` (None: no context), by
    default the system and developer messages; ``tools`` and a JSON schema response format
    come from the body.
    """
    if context is SYSTEM_MESSAGES:
        system = [text for role, text in messages_of(kind, body) if role in ("system", "developer") and text]
        context = "\n\n".join(system) or None
    tools = []
    for tool in body.get("tools") or ():
        if not isinstance(tool, Mapping) or tool.get("type", "function") != "function":
            continue
        if "function" in tool:
            tools.append(tool)
        else:  # Responses API tools are flat: {"type": "function", "name", "parameters"}
            spec = {k: tool[k] for k in ("name", "description", "parameters", "strict") if k in tool}
            tools.append({"type": "function", "function": spec})
    for function in body.get("functions") or ():  # the legacy chat `functions` parameter
        if isinstance(function, Mapping):
            tools.append({"type": "function", "function": function})
    if kind == "chat":
        response_format = body.get("response_format")
        schema_holder = response_format.get("json_schema") if isinstance(response_format, Mapping) else None
    else:
        text = body.get("text")
        response_format = text.get("format") if isinstance(text, Mapping) else None
        schema_holder = response_format
    fmt = response_format.get("type") if isinstance(response_format, Mapping) else None
    schema = schema_holder.get("schema") if fmt == "json_schema" and isinstance(schema_holder, Mapping) else None
    validators = ("json",) if fmt == "json_object" else ()
    request = Request(query=query_of(kind, body), context=context, tools=tuple(tools),
                      schema=schema if isinstance(schema, Mapping) else None)
    return request, validators
