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
  (also ``"n": "auto"``, ``min_n``, ``max_n``, ``top_up``, ``settle``, ``strategy``, ``max_tokens_total``)
  or the headers ``x-rerank-n``, ``x-rerank-deadline``, ``x-rerank-weights`` (a JSON object) and
  the like for every option but ``context`` (``x-rerank-top-up: step``) override the options;
  they are checked before anything is sent and removed before the upstream sees the request.
- ``n="auto"`` and ``strategy="first-valid"`` run through :mod:`rerank.adaptive`; each
  candidate's usage and the rounds run are in the ranking (``explain(r).generation``).
- A request that already asks for several choices itself (``n > 1``) is passed through untouched.
- When every candidate fails, the SDK raises what it would have raised for that failure.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any, Mapping, Sequence, TypeVar, cast

import httpx2

from .adaptive import agenerate_rounds, generate_rounds
from .errors import ConfigError, GenerationError, InputError, SendError
from .generate import DEFAULT_CONCURRENCY, Generation, drop_unusable
from .reranker import Reranker
from .scorers.base import Scorer
from .scorers.judge import LLMJudge
from .selection import ContextOption, Options, Selector
from .types import Candidate, Check, Ranking, ScoredCandidate
from .wire import WIRE_HEADERS, Call, answer, encode, read_call, read_reply, upstream_headers

__all__ = ["AsyncRerankTransport", "RerankTransport", "explain", "wrap"]

ClientT = TypeVar("ClientT")

# Outer HTTP clients made by wrap(), mapped to the HTTP client they wrap: wrapping a wrapped
# client replaces its options instead of fanning out twice.
_INNER: "weakref.WeakKeyDictionary[Any, Any]" = weakref.WeakKeyDictionary()


def read(request: httpx2.Request) -> Call | None:
    """The call an SDK request makes, or None for one to pass through."""
    return read_call(request.method, request.url.path, request.headers.get, request.content)


def candidate_request(request: httpx2.Request, body: Mapping[str, Any], number: int) -> httpx2.Request:
    """One candidate's request: the caller's, with this body and without rerank's headers."""
    return httpx2.Request(request.method, request.url, headers=upstream_headers(request.headers.multi_items(), number),
                          content=encode(body), extensions=request.extensions)


def reply_of(call: Call, response: httpx2.Response) -> dict[str, Any]:
    """The JSON body of an upstream answer; SendError (holding the response) when it has no candidate."""
    return read_reply(call.kind, response.status_code, response.content, upstream=response)


def respond(call: Call, generation: Generation, ranking: Ranking) -> httpx2.Response:
    """The HTTP response the SDK gets: the winner, usage summed, the ranking attached."""
    headers, content = answer(call, generation, ranking)
    return httpx2.Response(200, headers=headers, content=content)


def failure_response(request: httpx2.Request, generation: Generation) -> httpx2.Response:
    """No candidate: the answer (or exception) that makes the SDK raise its own error.

    An upstream error status wins (the SDK raises its status error with that body); else the
    first failure decides: a transport error is raised as is (timeout, connection error), an
    unusable body becomes the SDK's ``APIResponseValidationError``.
    """
    import openai

    upstreams = [f.error.upstream for f in generation.failures if isinstance(f.error, SendError)]
    for upstream in upstreams:
        if isinstance(upstream, httpx2.Response) and upstream.status_code >= 400:
            headers = [(k, v) for k, v in upstream.headers.multi_items() if k.lower() not in WIRE_HEADERS]
            return httpx2.Response(upstream.status_code, headers=headers, content=upstream.content)
    for failure in generation.failures:
        upstream = failure.error.upstream if isinstance(failure.error, SendError) else None
        if isinstance(upstream, httpx2.HTTPError):
            raise upstream
        if isinstance(upstream, httpx2.Response):
            raise openai.APIResponseValidationError(
                response=upstream, body=upstream.text[:2000], message=f"rerank: {failure.error}"
            )
        if isinstance(upstream, Mapping):  # a parsed reply whose candidate was unusable
            response = httpx2.Response(200, request=request, content=encode(upstream))
            raise openai.APIResponseValidationError(response=response, body=dict(upstream),
                                                    message=f"rerank: {failure.error}")
    raise GenerationError(
        "no candidate could be generated: " + ("; ".join(generation.failure_messages()) or "no request made"),
        [f.error for f in generation.failures],
    )


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
        call = read(request)
        if call is None:
            return self.inner.send(request, stream=True)
        options = self.selector.options_for(call, str(request.url))
        numbers = iter(range(1_000_000))

        def send(body: dict[str, Any]) -> dict[str, Any]:
            try:
                response = self.inner.send(candidate_request(request, body, next(numbers)))
            except httpx2.RequestError as exc:
                raise SendError(f"{type(exc).__name__}: {exc}", upstream=exc) from exc
            return reply_of(call, response)

        agree, valid = self.selector.judges(call, options)
        generation = generate_rounds(call.body, send, kind=call.kind, fanning=options, agree=agree,
                                     valid=valid)
        self.selector.learn(str(request.url), generation)
        drop_unusable(generation)
        if not generation.candidates:
            return failure_response(request, generation)
        return respond(call, generation, self.selector.rank(call, options, generation))

    def close(self) -> None:
        self.inner.close()


class AsyncRerankTransport(httpx2.AsyncBaseTransport):
    """The asyncio twin of :class:`RerankTransport`; ranking runs in a worker thread."""

    def __init__(self, inner: httpx2.AsyncClient, selector: Selector) -> None:
        self.inner = inner
        self.selector = selector

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        await request.aread()
        call = read(request)
        if call is None:
            return await self.inner.send(request, stream=True)
        options = self.selector.options_for(call, str(request.url))
        numbers = iter(range(1_000_000))

        async def send(body: dict[str, Any]) -> dict[str, Any]:
            try:
                response = await self.inner.send(candidate_request(request, body, next(numbers)))
            except httpx2.RequestError as exc:
                raise SendError(f"{type(exc).__name__}: {exc}", upstream=exc) from exc
            return reply_of(call, response)

        agree, valid = self.selector.judges(call, options)
        generation = await agenerate_rounds(call.body, send, kind=call.kind, fanning=options,
                                            agree=agree, valid=valid)
        self.selector.learn(str(request.url), generation)
        drop_unusable(generation)
        if not generation.candidates:
            return failure_response(request, generation)
        ranking = await asyncio.to_thread(self.selector.rank, call, options, generation)
        return respond(call, generation, ranking)

    async def aclose(self) -> None:
        await self.inner.aclose()


# --- the public API -------------------------------------------------------------------------


def wrap(
    client: ClientT, *, n: int | str = 4, reranker: Reranker | None = None, models: Sequence[str] = (),
    concurrency: int = DEFAULT_CONCURRENCY, deadline: float | None = None, context: ContextOption = None,
    native_n: bool = True, judge: bool | Scorer = False, judge_model: str | None = None,
    judge_weight: float = 2.0, min_n: int = 2, max_n: int = 8, top_up: str = "round",
    settle: str = "majority", strategy: str = "best", max_tokens_total: int | None = None, **reranker_options: Any,
) -> ClientT:
    """A copy of an ``openai.OpenAI`` / ``AsyncOpenAI`` client whose calls return the best of ``n``.

    ``chat.completions.create`` (and ``.parse``, ``.stream``) and ``responses.create`` return
    the SDK's own objects holding the chosen candidate; ``explain(response)`` gives the ranking.

    - ``reranker``: the Reranker to pick with; otherwise one is built from ``reranker_options``
      (``scorers``, ``validators``, ``weights``, ``strict``, ``model``, ``auto_validators``).
      With ``strict=True`` a call whose candidates all fail validation raises
      AllCandidatesFailedError; otherwise the best is returned with ``all_failed`` set.
    - ``n="auto"``: adaptive N. Ask for ``min_n`` candidates; stop when they agree by the task's
      own notion (same tool calls, same JSON leaves, same probe outputs, same short final answer,
      or close open text; :mod:`rerank.agreement`) and pass every gate; otherwise top up to
      ``max_n`` in one more round (``top_up="round"``), doubling (``top_up="double"``) or one
      candidate a round (``top_up="step"``). ``settle="confident"`` stops only once the leading
      answer is 95% likely the likelier one (4 of 4 agreeing, 6 of 7...) instead of at a majority.
      The ranking's ``generation`` says how many rounds ran and why they stopped.
    - ``strategy="first-valid"``: ask for ``n`` at once and answer with the first candidate that
      passes every gate, cancelling the rest where the client allows (async) or leaving them
      unheard (sync); a stream starts as soon as that candidate is known.
    - ``max_tokens_total``: a per-call token budget; once spent, adaptive N tops up no more.
      Each candidate's usage is in the ranking (``explain(r).by_index()[i].usage``).
    - ``models``: spread the candidates over these models (round robin) instead of the call's.
    - ``concurrency``: most requests in flight at once, per call.
    - ``deadline``: seconds; pick among the candidates done by then (waiting for at least one).
    - ``context``: the text answers must stay faithful to, or a function of the request body
      returning it; by default the system (and developer) messages.
    - ``native_n``: ask for chat candidates through the API's ``n`` (topped up or replaced by
      single requests when the server ignores or rejects it).
    - ``judge``: also ask a model to name the best candidate (:class:`rerank.scorers.judge.LLMJudge`,
      one more call per request, through the unwrapped client; its usage is added to the
      response's and listed under the ranking's ``spent``), weighted ``judge_weight``. It asks
      ``judge_model``, else the call's own model. A scorer instance may be given instead of True.

    The copy shares the original's connection pool: closing either closes both.
    """
    import openai

    if not isinstance(client, (openai.OpenAI, openai.AsyncOpenAI)):
        raise ConfigError(
            f"rerank.wrap takes an openai.OpenAI or openai.AsyncOpenAI client, got {type(client).__name__}; "
            "for other SDKs decorate the calling function with rerank.best_of"
        )
    options = Options.of(n=n, models=tuple(models) if not isinstance(models, str) else models,
                         concurrency=concurrency, deadline=deadline, native_n=native_n, context=context,
                         min_n=min_n, max_n=max_n, top_up=top_up, settle=settle, strategy=strategy,
                         max_tokens_total=max_tokens_total)
    if reranker is not None and reranker_options:
        raise ConfigError(
            f"give either reranker= or reranker options ({', '.join(sorted(reranker_options))}), not both"
        )
    if judge:
        if reranker is not None:
            raise ConfigError("judge= goes with reranker options, not reranker=: give your Reranker "
                              "add_scorers=[(LLMJudge(client=..., model=...), weight)] instead")
        scorer = judge if isinstance(judge, Scorer) else LLMJudge(client=_sync_twin(client), model=judge_model)
        reranker_options["add_scorers"] = [*reranker_options.get("add_scorers", ()), (scorer, judge_weight)]
    selector = Selector(options, reranker=reranker, reranker_options=reranker_options)
    # The SDK keeps its HTTP client in `_client`; copy(http_client=...) is the public way back in.
    http_client = client._client
    http_client = _INNER.get(http_client, http_client)
    settings = dict(timeout=http_client.timeout, headers=http_client.headers, params=http_client.params,
                    cookies=http_client.cookies, base_url=http_client.base_url)
    if isinstance(client, openai.AsyncOpenAI):
        outer: Any = httpx2.AsyncClient(transport=AsyncRerankTransport(http_client, selector), **settings)
    else:
        outer = httpx2.Client(transport=RerankTransport(http_client, selector), **settings)
    _INNER[outer] = http_client
    return cast(ClientT, client.copy(http_client=outer))  # a copy of type(client)


def api_key_for(api_key: str | None, base_url: str | None) -> str:
    """The API key a command-line client is built with: the one given, or any for a local server.

    Raises ConfigError when there is neither a key nor a ``base_url`` (OpenAI itself needs a key).
    """
    if api_key:
        return api_key
    if not base_url:
        raise ConfigError("no API key: set OPENAI_API_KEY or pass --api-key "
                          "(for a local server that needs none, pass --base-url)")
    return "none"  # local servers (vLLM, llama.cpp, Ollama) take any key


def _sync_twin(client: Any) -> Any:
    """A synchronous client for the judge: the caller's own (unwrapped) one, or a twin of an async one."""
    import openai

    if isinstance(client, openai.OpenAI):
        return client
    return openai.OpenAI(api_key=client.api_key, base_url=client.base_url, organization=client.organization,
                         project=client.project, timeout=client.timeout, max_retries=client.max_retries)


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
    metadata = getattr(response, "response_metadata", None)  # a LangChain message (rerank.integrations)
    if isinstance(metadata, Mapping) and "rerank" in metadata:
        return metadata["rerank"]
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
            usage=c.get("usage"),
        )
        for c in data["candidates"]
    ]
    return Ranking(
        candidates=tuple(sorted(scored, key=lambda c: c.rank)), profile=str(data.get("profile", "default")),
        weights=dict(data.get("weights") or {}), failures=tuple(data.get("failures") or ()),
        spent=dict(data.get("spent") or {}), generation=dict(data.get("generation") or {}),
    )
