"""``rerank.wrap(client)``: the openai SDK's own client, answering each call with the best of N.

The wrapped client is ``client.copy(http_client=...)`` with an HTTP client whose transport sits
between the SDK and the network. It sees every request the SDK sends; a chat completion or a
Responses API call is fanned out to N candidates (through the original HTTP client), ranked, and
answered with one ordinary JSON body holding the winner, so the SDK builds its own typed objects,
streams, raw responses and ``with_options`` copies as usual. Every other request passes through.

- ``stream=True``: candidates are fetched whole, then the winner is replayed as the API's own
  server-sent events, so the first token arrives only once selection is done.
- Usage is the sum over every request made; the ranking rides along in the body's ``rerank``
  field (read it with :func:`explain`) and in ``x-rerank-*`` response headers.
- Per call, ``extra_body={"rerank": {"n": 8, "deadline": 2.0, "weights": {...}, "context": "..."}}``
  or the headers ``x-rerank-n``, ``x-rerank-deadline``, ``x-rerank-weights`` (a JSON object)
  override the options; they are removed before the upstream sees the request.
- A request that already asks for several choices itself (``n > 1``) is passed through untouched.
- When every candidate fails, the SDK raises what it would have raised for that failure.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping, Sequence, TypeVar

import httpx2

from .errors import ConfigError, GenerationError, InputError
from .generate import (
    DEFAULT_CONCURRENCY, SYSTEM_MESSAGES, Failure, Generation, Kind, SendError, agenerate, check_options, generate, request_of,
)
from .jsonl import MAX_LINE_BYTES, parse_line
from .reranker import Reranker
from .sse import chat_events, response_events
from .types import Candidate, Check, Ranking, ScoredCandidate

__all__ = ["AsyncRerankTransport", "RerankTransport", "explain", "wrap"]

ClientT = TypeVar("ClientT")
ContextOption = str | Callable[[Mapping[str, Any]], str | None] | None

OVERRIDE_KEYS = ("n", "deadline", "weights", "context")
HEADER_PREFIX = "x-rerank-"
# Headers that describe the body as it went over the wire; a rebuilt body gets its own.
_WIRE_HEADERS = {"content-length", "content-encoding", "transfer-encoding"}

# Outer HTTP clients made by wrap(), mapped to the HTTP client they wrap: wrapping a wrapped
# client replaces its options instead of fanning out twice.
_INNER: "weakref.WeakKeyDictionary[Any, Any]" = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class Options:
    """How a wrapped client generates and picks; see :func:`wrap`."""

    n: int = 4
    models: tuple[str, ...] = ()
    concurrency: int = DEFAULT_CONCURRENCY
    deadline: float | None = None
    native_n: bool = True
    context: ContextOption = None


@dataclass(frozen=True)
class Call:
    """One intercepted call: which API, the body to fan out, and how to answer."""

    kind: Kind
    body: dict[str, Any]
    stream: bool
    include_usage: bool
    options: Options
    weights: Mapping[str, float]


class Selector:
    """The SDK-independent half of the transports: reads calls, builds upstream requests, ranks."""

    def __init__(self, options: Options, *, reranker: Reranker | None = None,
                 reranker_options: Mapping[str, Any] | None = None) -> None:
        self.options = options
        self._given = reranker
        self._reranker_options = dict(reranker_options or {})
        self._rerankers: dict[tuple[str, ...], Reranker] = {}
        # (URL, model) pairs whose server rejected or ignored `n`: later calls skip straight to
        # single requests instead of losing a round trip each time.
        self._no_native_n: set[tuple[str, str | None]] = set()
        if reranker is None:
            self.reranker(())  # unknown scorers or validators fail at wrap(), not at the first call

    def reranker(self, extra_validators: tuple[str, ...]) -> Reranker:
        """The reranker for a call; a ``json_object`` response format adds the json validator."""
        if self._given is not None:
            return self._given
        if extra_validators not in self._rerankers:
            options = dict(self._reranker_options)
            validators = list(options.pop("validators", ()))
            validators += [v for v in extra_validators if v not in validators]
            self._rerankers[extra_validators] = Reranker(validators=validators, **options)
        return self._rerankers[extra_validators]

    # --- reading a call ---------------------------------------------------------------------

    def call_of(self, request: httpx2.Request) -> Call | None:
        """The call to rerank, or None for a request that passes through untouched."""
        kind = _kind_of(request)
        if kind is None:
            return None
        line = parse_line(request.content, 1)
        if line.value is None:
            return None  # not a JSON object: let the upstream answer it
        body = dict(line.value)
        if (isinstance(body.get("n"), int) and body["n"] > 1) or body.get("background"):
            return None
        overrides = _overrides(body.pop("rerank", None), request.headers)
        body.pop("n", None)
        stream = bool(body.pop("stream", False))
        stream_options = body.pop("stream_options", None)
        include_usage = isinstance(stream_options, Mapping) and bool(stream_options.get("include_usage"))
        weights = overrides.pop("weights", {})
        options = replace(self.options, **overrides)
        check_options(kind=kind, n=options.n, models=options.models, concurrency=options.concurrency,
                      deadline=options.deadline)
        models = options.models or (body.get("model"),)
        if any((str(request.url), model) in self._no_native_n for model in models):
            options = replace(options, native_n=False)
        return Call(kind, body, stream, include_usage, options, weights)

    def learn(self, request: httpx2.Request, generation: Generation) -> None:
        """Remember the models whose server did not honour ``n`` for this URL."""
        self._no_native_n.update((str(request.url), model) for model in generation.n_unsupported)

    def upstream(self, request: httpx2.Request, body: Mapping[str, Any], number: int) -> httpx2.Request:
        """One candidate's request: the caller's, with this body and without rerank's headers."""
        headers = []
        for name, value in request.headers.multi_items():
            lowered = name.lower()
            if lowered in _WIRE_HEADERS or lowered.startswith(HEADER_PREFIX):
                continue
            if lowered == "idempotency-key":  # each candidate is a different request
                value = f"{value}-rerank-{number}"
            headers.append((name, value))
        content = json.dumps(body, ensure_ascii=False).encode("utf-8")
        return httpx2.Request(request.method, request.url, headers=headers, content=content,
                              extensions=request.extensions)

    # --- answering --------------------------------------------------------------------------

    def settle(self, request: httpx2.Request, generation: Generation) -> httpx2.Response | None:
        """Learn from the generation, drop unusable candidates; the error response if none is left."""
        self.learn(request, generation)
        drop_unusable(generation)
        return None if generation.candidates else failure_response(generation)

    def rank(self, call: Call, generation: Generation) -> Ranking:
        """Rank the candidates generated for a call (strict mode raises AllCandidatesFailedError)."""
        context = call.options.context
        if context is None:
            context = SYSTEM_MESSAGES
        elif callable(context):
            context = context(call.body) or None
        request, validators = request_of(call.kind, call.body, context=context)
        reranker = self.reranker(validators)
        signals = reranker.measure(request, [g.message for g in generation.candidates])
        unknown = set(call.weights) - set(signals.weights)
        if unknown:
            raise ConfigError(
                f"per-call weights name scorers not used for this request: {', '.join(sorted(unknown))}; "
                f"in use: {', '.join(signals.weights) or 'none'}"
            )
        weights = {**signals.weights, **call.weights} if call.weights else None
        ranking = reranker.combine(signals, weights=weights)
        return replace(ranking, failures=generation.failure_messages())

    def respond(self, call: Call, generation: Generation, ranking: Ranking) -> httpx2.Response:
        """The HTTP response the SDK gets: the winner, usage summed, the ranking attached."""
        best = generation.candidates[ranking.best_index]
        body = dict(best.response)
        if call.kind == "chat":
            body["choices"] = [{**(best.choice or {}), "index": 0}]
        if generation.usage is not None:
            body["usage"] = generation.usage
        body["rerank"] = explanation(ranking, generation)
        headers = {
            f"{HEADER_PREFIX}best-index": str(ranking.best_index),
            f"{HEADER_PREFIX}candidates": str(len(ranking)),
            f"{HEADER_PREFIX}failures": str(len(ranking.failures)),
            f"{HEADER_PREFIX}all-failed": "true" if ranking.all_failed else "false",
            f"{HEADER_PREFIX}profile": ranking.profile,
        }
        if call.stream:
            events = chat_events(body, include_usage=call.include_usage) if call.kind == "chat" \
                else response_events(body)
            headers["content-type"] = "text/event-stream; charset=utf-8"
            return httpx2.Response(200, headers=headers, content=b"".join(events))
        headers["content-type"] = "application/json"
        return httpx2.Response(200, headers=headers, content=json.dumps(body, ensure_ascii=False).encode("utf-8"))


def read_reply(response: httpx2.Response) -> dict[str, Any]:
    """The JSON body of an upstream answer; SendError for an error status or a body that is no object."""
    if response.status_code >= 400:
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text[:2000]
        detail = body.get("error") if isinstance(body, Mapping) else None
        message = detail.get("message") if isinstance(detail, Mapping) else body
        raise SendError(f"HTTP {response.status_code}: {str(message)[:300]}", status=response.status_code,
                        body=body, upstream=response)
    if len(response.content) > MAX_LINE_BYTES:
        raise SendError(f"the response body is larger than {MAX_LINE_BYTES:,} bytes", upstream=response)
    line = parse_line(response.content, 1)
    if line.value is None:
        raise SendError((line.error or "").replace("line 1", "the response body", 1), upstream=response)
    return line.value


def drop_unusable(generation: Generation) -> None:
    """Move candidates the reranker would refuse (e.g. malformed tool calls) to the failures."""
    usable = []
    for generated in generation.candidates:
        try:
            Candidate.coerce(generated.message)
        except InputError as exc:
            generation.failures.append(Failure(SendError(f"unusable candidate: {exc}"), 1, generated.model))
            continue
        usable.append(generated)
    generation.candidates = usable


def failure_response(generation: Generation) -> httpx2.Response:
    """No candidate: the answer (or exception) that makes the SDK raise what it raises for the
    first failure: its own status error, timeout or connection error, or validation error."""
    for failure in generation.failures:
        upstream = failure.error.upstream if isinstance(failure.error, SendError) else None
        if isinstance(upstream, httpx2.Response) and upstream.status_code >= 400:
            headers = [(k, v) for k, v in upstream.headers.multi_items() if k.lower() not in _WIRE_HEADERS]
            return httpx2.Response(upstream.status_code, headers=headers, content=upstream.content)
        if isinstance(upstream, httpx2.HTTPError):
            raise upstream
        if isinstance(upstream, httpx2.Response):
            import openai

            raise openai.APIResponseValidationError(
                response=upstream, body=upstream.text[:2000], message=f"rerank: {failure.error}"
            )
    raise GenerationError(
        "no candidate could be generated: " + ("; ".join(generation.failure_messages()) or "no request made"),
        [f.error for f in generation.failures],
    )


def _kind_of(request: httpx2.Request) -> Kind | None:
    if request.method != "POST":
        return None
    path = request.url.path.rstrip("/")
    if path.endswith("/chat/completions"):
        return "chat"
    if path.endswith("/responses"):
        return "responses"
    return None


def _overrides(extra: Any, headers: httpx2.Headers) -> dict[str, Any]:
    """Per-call options from ``extra_body={"rerank": {...}}`` and ``x-rerank-*`` headers, checked."""
    found: dict[str, Any] = {}
    if extra is not None:
        if not isinstance(extra, Mapping) or set(extra) - set(OVERRIDE_KEYS):
            raise ConfigError(
                f'extra_body "rerank" must be an object with keys among {", ".join(OVERRIDE_KEYS)}, got {extra!r}'
            )
        found.update(extra)
    for key in ("n", "deadline", "weights"):
        raw = headers.get(f"{HEADER_PREFIX}{key}")
        if raw is None:
            continue
        try:
            found[key] = json.loads(raw)
        except ValueError:
            raise ConfigError(f"header {HEADER_PREFIX}{key} must hold JSON, got {raw!r}") from None
    weights = found.get("weights", {})
    if not isinstance(weights, Mapping) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in weights.values()
    ):
        raise ConfigError(f'per-call "weights" must be an object of numbers, got {weights!r}')
    found["weights"] = {str(k): float(v) for k, v in weights.items()}
    if "context" in found and found["context"] is not None and not isinstance(found["context"], str):
        raise ConfigError(f'per-call "context" must be a string, got {type(found["context"]).__name__}')
    return found


# --- the two transports ---------------------------------------------------------------------


class RerankTransport(httpx2.BaseTransport):
    """Answers chat completion and Responses API calls with the best of N; passes the rest on.

    ``inner`` is the HTTP client the candidates are sent through (the wrapped client's own).
    """

    def __init__(self, inner: httpx2.Client, selector: Selector) -> None:
        self.inner = inner
        self.selector = selector

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        request.read()
        call = self.selector.call_of(request)
        if call is None:
            return self.inner.send(request, stream=True)
        numbers = iter(range(1_000_000))

        def send(body: dict[str, Any]) -> dict[str, Any]:
            upstream = self.selector.upstream(request, body, next(numbers))
            try:
                response = self.inner.send(upstream)
            except httpx2.RequestError as exc:
                raise SendError(f"{type(exc).__name__}: {exc}", upstream=exc) from exc
            return read_reply(response)

        options = call.options
        generation = generate(call.body, send, kind=call.kind, n=options.n, models=options.models,
                              native_n=options.native_n, concurrency=options.concurrency,
                              deadline=options.deadline)
        failed = self.selector.settle(request, generation)
        if failed is not None:
            return failed
        ranking = self.selector.rank(call, generation)
        return self.selector.respond(call, generation, ranking)

    def close(self) -> None:
        self.inner.close()


class AsyncRerankTransport(httpx2.AsyncBaseTransport):
    """The asyncio twin of :class:`RerankTransport`; ranking runs in a worker thread."""

    def __init__(self, inner: httpx2.AsyncClient, selector: Selector) -> None:
        self.inner = inner
        self.selector = selector

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        await request.aread()
        call = self.selector.call_of(request)
        if call is None:
            return await self.inner.send(request, stream=True)
        numbers = iter(range(1_000_000))

        async def send(body: dict[str, Any]) -> dict[str, Any]:
            upstream = self.selector.upstream(request, body, next(numbers))
            try:
                response = await self.inner.send(upstream)
            except httpx2.RequestError as exc:
                raise SendError(f"{type(exc).__name__}: {exc}", upstream=exc) from exc
            return read_reply(response)

        options = call.options
        generation = await agenerate(call.body, send, kind=call.kind, n=options.n, models=options.models,
                                     native_n=options.native_n, concurrency=options.concurrency,
                                     deadline=options.deadline)
        failed = self.selector.settle(request, generation)
        if failed is not None:
            return failed
        ranking = await asyncio.to_thread(self.selector.rank, call, generation)
        return self.selector.respond(call, generation, ranking)

    async def aclose(self) -> None:
        await self.inner.aclose()


# --- the public API -------------------------------------------------------------------------


def wrap(
    client: ClientT, *, n: int = 4, reranker: Reranker | None = None, models: Sequence[str] = (),
    concurrency: int = DEFAULT_CONCURRENCY, deadline: float | None = None, context: ContextOption = None,
    native_n: bool = True, **reranker_options: Any,
) -> ClientT:
    """A copy of an ``openai.OpenAI`` / ``AsyncOpenAI`` client whose calls return the best of ``n``.

    ``chat.completions.create`` (and ``.parse``, ``.stream``) and ``responses.create`` return
    the SDK's own objects holding the chosen candidate; ``explain(response)`` gives the ranking.

    - ``reranker``: the Reranker to pick with; otherwise one is built from ``reranker_options``
      (``scorers``, ``validators``, ``weights``, ``strict``, ``model``, ``auto_validators``).
      With ``strict=True`` a call whose candidates all fail validation raises
      AllCandidatesFailedError; otherwise the best is returned with ``all_failed`` set.
    - ``models``: spread the candidates over these models (round robin) instead of the call's.
    - ``concurrency``: most requests in flight at once, per call.
    - ``deadline``: seconds; pick among the candidates done by then (waiting for at least one).
    - ``context``: the text answers must stay faithful to, or a function of the request body
      returning it; by default the system (and developer) messages.
    - ``native_n``: ask for chat candidates through the API's ``n`` (topped up or replaced by
      single requests when the server ignores or rejects it).

    The copy shares the original's connection pool: closing either closes both.
    """
    import openai

    if not isinstance(client, (openai.OpenAI, openai.AsyncOpenAI)):
        raise ConfigError(
            f"rerank.wrap takes an openai.OpenAI or openai.AsyncOpenAI client, got {type(client).__name__}; "
            "for other SDKs decorate the calling function with rerank.best_of"
        )
    check_options(kind="chat", n=n, models=models, concurrency=concurrency, deadline=deadline)
    if reranker is not None and reranker_options:
        raise ConfigError(
            f"give either reranker= or reranker options ({', '.join(sorted(reranker_options))}), not both"
        )
    if context is not None and not (isinstance(context, str) or callable(context)):
        raise ConfigError(f"context must be a string or a function of the request body, got {context!r}")
    options = Options(n=n, models=tuple(models), concurrency=concurrency, deadline=deadline,
                      native_n=native_n, context=context)
    selector = Selector(options, reranker=reranker, reranker_options=reranker_options)
    # The SDK keeps its HTTP client in `_client`; copy(http_client=...) is the public way back in.
    http_client = client._client  # type: ignore[attr-defined]
    http_client = _INNER.get(http_client, http_client)
    settings = dict(timeout=http_client.timeout, headers=http_client.headers, params=http_client.params,
                    cookies=http_client.cookies, base_url=http_client.base_url)
    if isinstance(client, openai.AsyncOpenAI):
        outer: Any = httpx2.AsyncClient(transport=AsyncRerankTransport(http_client, selector), **settings)
    else:
        outer = httpx2.Client(transport=RerankTransport(http_client, selector), **settings)
    _INNER[outer] = http_client
    return client.copy(http_client=outer)  # type: ignore[attr-defined]


def explanation(ranking: Ranking, generation: Generation) -> dict[str, Any]:
    """The ``rerank`` field of a response: the ranking, each candidate's message and model."""
    out = ranking.to_dict()
    for entry in out["candidates"]:
        generated = generation.candidates[entry["index"]]
        entry["message"] = generated.message
        if generated.model:
            entry["model"] = generated.model
    out["failures"] = list(ranking.failures)
    out["requests"] = generation.requests
    return out


def explain(response: Any) -> Ranking:
    """The ranking behind a response from a wrapped client: every candidate, every score.

    Takes the returned object (chat completion, response, ``with_raw_response`` result, the
    last chunk of a chat stream, a ``response.completed`` event) or its JSON as a dict.
    """
    data = _find_ranking(response)
    if not isinstance(data, Mapping):
        raise InputError(
            f"{type(response).__name__} carries no ranking: it did not come from a client made by "
            "rerank.wrap (for a chat stream, pass the last chunk)"
        )
    try:
        return ranking_from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"the ranking attached to this response is malformed: {exc}") from None


def _find_ranking(response: Any) -> Any:
    if isinstance(response, Mapping):
        return response.get("rerank")
    if hasattr(response, "http_response") and callable(getattr(response, "parse", None)):
        return _find_ranking(response.parse())  # a with_raw_response result
    extra = getattr(response, "model_extra", None) or {}
    if "rerank" in extra:
        return extra["rerank"]
    inner = getattr(response, "response", None)  # a Responses API stream event
    return _find_ranking(inner) if inner is not None and inner is not response else None


def ranking_from_dict(data: Mapping[str, Any]) -> Ranking:
    """Rebuild a Ranking from its ``to_dict()`` shape plus each candidate's ``message``."""
    scored = [
        ScoredCandidate(
            index=int(c["index"]), candidate=Candidate.coerce(c.get("message") or ""), rank=int(c["rank"]),
            score=float(c["score"]), components=dict(c["components"]), raw=dict(c["raw"]),
            checks=tuple(Check(k["validator"], bool(k["passed"]), k.get("message", "")) for k in c["checks"]),
        )
        for c in data["candidates"]
    ]
    return Ranking(
        candidates=tuple(sorted(scored, key=lambda c: c.rank)), profile=str(data.get("profile", "default")),
        weights=dict(data.get("weights") or {}), failures=tuple(data.get("failures") or ()),
    )
