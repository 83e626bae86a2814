"""``@rerank.best_of(n=4)``: best-of-N for any function that returns text or a message.

For SDKs other than openai (whose client :func:`rerank.wrap` handles): the decorated function
is called ``n`` times concurrently with the same arguments, the results are ranked, and the
winning result is returned as the function returned it.

    @rerank.best_of(n=4)
    def ask(prompt: str) -> str:
        return my_llm.complete(prompt)

    answer = ask("Summarise ...")               # the best of four answers
    answer, ranking = ask.rank("Summarise ...")  # ... and why it won
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
from dataclasses import replace
from typing import Any, Callable, Mapping, Sequence

from .errors import ConfigError, GenerationError, InputError
from .generate import DEFAULT_CONCURRENCY, afan_out, check_options, fan_out
from .reranker import Reranker
from .types import Candidate, Ranking, Request, ToolCall

__all__ = ["as_candidate", "best_of"]

QUERY_PARAMETERS = ("query", "prompt", "question", "input", "messages", "text")
"""Parameters whose argument is taken as the query, in this order, when ``query`` is not given."""

ArgumentsFn = Callable[[Mapping[str, Any]], Any]


def best_of(
    n: int = 4, *, reranker: Reranker | None = None, query: str | ArgumentsFn | None = None,
    context: str | ArgumentsFn | None = None, tools: Sequence[Mapping[str, Any]] = (),
    schema: Mapping[str, Any] | None = None, to_candidate: Callable[[Any], Any] | None = None,
    concurrency: int = DEFAULT_CONCURRENCY, deadline: float | None = None, **reranker_options: Any,
) -> Callable[[Callable[..., Any]], Any]:
    """Decorate a sync or async function so that each call returns the best of ``n`` results.

    - ``query``: the name of the parameter holding the request, or a function of the bound
      arguments (a dict) returning it; by default the first of ``query``, ``prompt``,
      ``question``, ``input``, ``messages``, ``text`` given, else the first string argument.
      A list of chat messages counts as its last user message.
    - ``context``, ``tools``, ``schema``: what answers must stay faithful or conform to
      (``context`` may also be a parameter name or a function of the arguments).
    - ``to_candidate``: turns a result into a string or an assistant message; by default
      strings, OpenAI-style messages, objects with ``content`` / ``text`` and Anthropic-style
      content blocks are understood.
    - ``reranker`` or ``reranker_options`` (``scorers``, ``validators``, ``weights``, ``strict``...).
    - ``concurrency``: calls in flight at once; ``deadline``: seconds, then pick among the
      results in by then (waiting for at least one).

    Calls that raise are left out (listed in the ranking's failures); when every call raises,
    the first exception is raised again. The decorated function's ``rank(*args, **kwargs)``
    returns ``(result, ranking)``.
    """
    check_options(kind="chat", n=n, concurrency=concurrency, deadline=deadline)
    if reranker is not None and reranker_options:
        raise ConfigError("give either reranker= or reranker options, not both")
    chosen = reranker if reranker is not None else Reranker(**reranker_options)
    convert = to_candidate or as_candidate

    def decorate(func: Callable[..., Any]) -> Any:
        signature = inspect.signature(func)

        def request_for(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Request:
            bound = signature.bind(*args, **kwargs)
            arguments = dict(bound.arguments)
            text = _pick(query, arguments, default=_default_query)
            ctx = _pick(context, arguments, default=lambda _: None)
            return Request(query=_as_text(text), context=_as_text(ctx) or None, tools=tuple(tools), schema=schema)

        def choose(request: Request, results: list[Any], errors: list[BaseException]) -> tuple[Any, Ranking]:
            if not results:
                if errors:
                    raise errors[0]
                raise GenerationError("no call finished", [])
            ranking = chosen.rank(request, [convert(r) for r in results])
            failures = tuple(f"call failed: {type(e).__name__}: {e}" for e in errors)
            return results[ranking.best_index], replace(ranking, failures=failures)

        if inspect.iscoroutinefunction(func):

            async def arank(*args: Any, **kwargs: Any) -> tuple[Any, Ranking]:
                request = request_for(args, kwargs)
                results, errors = await _gather(lambda: func(*args, **kwargs), n, concurrency, deadline)
                return await asyncio.to_thread(choose, request, results, errors)

            @functools.wraps(func)
            async def acall(*args: Any, **kwargs: Any) -> Any:
                return (await arank(*args, **kwargs))[0]

            acall.rank = arank  # type: ignore[attr-defined]
            return acall

        def rank(*args: Any, **kwargs: Any) -> tuple[Any, Ranking]:
            request = request_for(args, kwargs)
            results, errors = _run(lambda: func(*args, **kwargs), n, concurrency, deadline)
            return choose(request, results, errors)

        @functools.wraps(func)
        def call(*args: Any, **kwargs: Any) -> Any:
            return rank(*args, **kwargs)[0]

        call.rank = rank  # type: ignore[attr-defined]
        return call

    return decorate


def _collector(results: list[Any], errors: list[BaseException]) -> Any:
    """The ``done`` callback of a best_of fan-out: each value into ``results``, each Exception into ``errors``."""
    def done(job: int, result: Any, error: Exception | None) -> list[int]:
        if error is not None:
            errors.append(error)
        else:
            results.append(result)
        return []
    return done


def _run(make: Callable[[], Any], n: int, concurrency: int,
         deadline: float | None) -> tuple[list[Any], list[BaseException]]:
    """Call ``make`` n times from worker threads; results in completion order, and the errors."""
    results: list[Any] = []
    errors: list[BaseException] = []
    fan_out(range(n), lambda _: make(), _collector(results, errors), concurrency=min(n, concurrency),
            deadline=deadline, have=lambda: bool(results))
    return results, errors


async def _gather(make: Callable[[], Any], n: int, concurrency: int,
                  deadline: float | None) -> tuple[list[Any], list[BaseException]]:
    """Await ``make()`` n times as tasks, at most ``concurrency`` at once; cancel the late ones."""
    results: list[Any] = []
    errors: list[BaseException] = []
    await afan_out(range(n), lambda _: make(), _collector(results, errors), concurrency=concurrency,
                   deadline=deadline, have=lambda: bool(results))
    return results, errors


def _pick(option: Any, arguments: Mapping[str, Any], *, default: Callable[[Mapping[str, Any]], Any]) -> Any:
    if option is None:
        return default(arguments)
    if callable(option):
        return option(arguments)
    if isinstance(option, str):
        if option not in arguments:
            raise ConfigError(f"no argument named {option!r} in this call; arguments: {', '.join(arguments)}")
        return arguments[option]
    raise ConfigError(f"expected a parameter name or a function of the arguments, got {option!r}")


def _default_query(arguments: Mapping[str, Any]) -> Any:
    for name in QUERY_PARAMETERS:
        if name in arguments:
            return arguments[name]
    return next((value for value in arguments.values() if isinstance(value, str)), "")


def _as_text(value: Any) -> str:
    """A query or context as text: strings as they are, chat messages as the last user message."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, Sequence) and value and all(isinstance(m, Mapping) for m in value):
        users = [m for m in value if m.get("role") == "user"] or list(value)
        return _content_text(users[-1].get("content"))
    raise InputError(f"the query must be a string or a list of chat messages, got {type(value).__name__}")


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    texts = []
    for block in content or ():
        text = block.get("text") if isinstance(block, Mapping) else getattr(block, "text", None)
        if isinstance(text, str):
            texts.append(text)
    return "\n".join(texts)


def _field(value: Any, name: str) -> Any:
    return value.get(name) if isinstance(value, Mapping) else getattr(value, name, None)


def as_candidate(value: Any) -> Candidate:
    """Read a function's result as a candidate: text, an assistant message, or content blocks.

    Understands strings, OpenAI-style messages (``content`` + ``tool_calls``), objects with a
    ``content`` or ``text`` attribute, and Anthropic-style content blocks (``text`` and
    ``tool_use``). Anything else raises InputError; pass ``to_candidate=`` for it.
    """
    if isinstance(value, (str, Candidate)):
        return Candidate.coerce(value)
    content = _field(value, "content")
    calls = [_tool_call(c) for c in _field(value, "tool_calls") or ()]
    if isinstance(content, (list, tuple)):
        calls += [_tool_call(block) for block in content if _field(block, "type") == "tool_use"]
        content = _content_text([b for b in content if _field(b, "type") in (None, "text")]) or None
    if content is None and not calls and isinstance(_field(value, "text"), str):
        content = _field(value, "text")
    if isinstance(content, str) or calls:
        return Candidate(content=content if isinstance(content, str) else None, tool_calls=tuple(calls))
    raise InputError(
        f"cannot read a {type(value).__name__} as an answer: return text or a message, "
        "or pass to_candidate= to best_of"
    )


def _tool_call(value: Any) -> ToolCall:
    function = _field(value, "function")
    if function is not None:
        return ToolCall.coerce(value if isinstance(value, Mapping) else {
            "id": _field(value, "id"),
            "function": {"name": _field(function, "name"), "arguments": _field(function, "arguments")},
        })
    arguments: Any = next((a for a in (_field(value, k) for k in ("arguments", "args", "input")) if a is not None), {})
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments)
    name = _field(value, "name")
    if not isinstance(name, str):
        raise InputError(f"a tool call needs a name, got {value!r}")
    return ToolCall(name=name, arguments=arguments, id=_field(value, "id"))
