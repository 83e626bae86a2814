"""The OpenAI wire format, in one place: what rerank reads from a call and writes back.

- Reading a call: which API a URL is (:func:`kind_of`), the body to fan out and the per-call
  overrides (:func:`read_call`), the :class:`~rerank.types.Request` the scorers get (:func:`request_of`).
- Building upstream requests: the caller's headers minus rerank's own (:func:`upstream_headers`).
- Reading answers: an upstream reply's JSON (:func:`read_reply`), the candidates it holds
  (:func:`candidates_of`), usage summed (:func:`add_usage`), whether it refused ``n`` (:func:`rejects_n`).
- Answering: the winning body with the ranking and summed usage, as JSON or replayed as the
  API's server-sent events (:func:`answer`); OpenAI-shaped error bodies (:func:`error_body`).

Nothing here sends anything or knows an HTTP client: the edges (middleware, proxy, testing
server, batch runner) pass bytes, header pairs and parsed bodies in and out.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Literal, Mapping, Sequence

from .errors import ConfigError, SendError
from .jsonl import MAX_LINE_BYTES, parse_line
from .sse import chat_events, response_events
from .types import Ranking, Request

if TYPE_CHECKING:  # types only: generate imports this module
    from .generate import Generation

Kind = Literal["chat", "responses"]
KINDS: tuple[Kind, ...] = ("chat", "responses")
URLS: dict[str, Kind] = {"/v1/chat/completions": "chat", "/v1/responses": "responses"}
"""The API paths answered with the best of N, and the API kind each one is."""

OVERRIDE_KEYS = ("n", "deadline", "weights", "context", "min_n", "max_n", "top_up", "settle", "strategy", "max_tokens_total")
HEADER_KEYS = tuple(key for key in OVERRIDE_KEYS if key != "context")
"""Overrides a header may carry, as ``x-rerank-<key with dashes>`` (a context is too long for one)."""
WORD_KEYS = ("n", "top_up", "settle", "strategy")
"""Overrides whose header may hold a bare word (``x-rerank-settle: confident``) instead of JSON."""
HEADER_PREFIX = "x-rerank-"
WIRE_HEADERS = {"content-length", "content-encoding", "transfer-encoding"}
"""Headers that describe a body as it went over the wire; a rebuilt body gets its own."""


def kind_of(method: str, path: str) -> Kind | None:
    """The API a request calls (``POST .../chat/completions`` or ``.../responses``), else None."""
    if method.upper() != "POST":
        return None
    path = path.split("?", 1)[0].rstrip("/")
    for suffix, kind in URLS.items():
        if path.endswith(suffix.removeprefix("/v1")):
            return kind
    return None


def read_json(raw: bytes, what: str) -> tuple[dict[str, Any] | None, str | None]:
    """``raw`` parsed as a JSON object, or None and why not (``what`` names it in the message)."""
    try:
        line = parse_line(raw, 1)
    except (ValueError, RecursionError) as exc:  # e.g. an integer longer than Python converts
        return None, f"{what} is not usable JSON: {exc}"
    if line.value is None:
        return None, (line.error or "").replace("line 1", what, 1)
    return line.value, None


def encode(body: Any) -> bytes:
    """A body as UTF-8 JSON bytes, unicode kept as is."""
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


# --- reading a call -------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One call to answer with the best of N: its API, the body to fan out, how to answer.

    ``overrides`` holds the per-call options found (``n``, ``deadline``, ``context``); ``weights``
    the per-call weights (empty: none).
    """

    kind: Kind
    body: dict[str, Any]
    stream: bool
    include_usage: bool
    overrides: dict[str, Any] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)


def read_call(method: str, path: str, header: Callable[[str], str | None], raw: bytes) -> Call | None:
    """The call a request makes, or None for one to pass through untouched.

    Passed through: other routes, bodies that are no JSON object (the upstream answers them),
    calls that ask for several choices themselves (``n > 1``) or run in the background.
    ``header(name)`` reads a request header. Raises ConfigError for bad per-call overrides.
    """
    kind = kind_of(method, path)
    if kind is None:
        return None
    value, _ = read_json(raw, "the request body")
    if value is None:
        return None
    body = dict(value)
    if (isinstance(body.get("n"), int) and body["n"] > 1) or body.get("background"):
        return None
    overrides = read_overrides(body.pop("rerank", None), header)
    body.pop("n", None)
    stream = bool(body.pop("stream", False))
    stream_options = body.pop("stream_options", None)
    include_usage = isinstance(stream_options, Mapping) and bool(stream_options.get("include_usage"))
    weights = overrides.pop("weights")
    return Call(kind, body, stream, include_usage, overrides, weights)


def read_overrides(extra: Any, header: Callable[[str], str | None]) -> dict[str, Any]:
    """Per-call options from ``extra_body={"rerank": {...}}`` and ``x-rerank-*`` headers, checked."""
    found: dict[str, Any] = {}
    if extra is not None:
        if not isinstance(extra, Mapping) or set(extra) - set(OVERRIDE_KEYS):
            raise ConfigError(
                f'extra_body "rerank" must be an object with keys among {", ".join(OVERRIDE_KEYS)}, got {extra!r}'
            )
        found.update(extra)
    for key in HEADER_KEYS:
        name = f"{HEADER_PREFIX}{key.replace('_', '-')}"
        raw = header(name)
        if raw is None:
            continue
        try:
            found[key] = json.loads(raw)
        except ValueError:
            if key not in WORD_KEYS:
                raise ConfigError(f"header {name} must hold JSON, got {raw!r}") from None
            found[key] = raw.strip()  # checked with the other options
    weights = found.get("weights", {})
    if not isinstance(weights, Mapping) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in weights.values()
    ):
        raise ConfigError(f'per-call "weights" must be an object of numbers, got {weights!r}')
    found["weights"] = {str(k): float(v) for k, v in weights.items()}
    if "context" in found and found["context"] is not None and not isinstance(found["context"], str):
        raise ConfigError(f'per-call "context" must be a string, got {type(found["context"]).__name__}')
    return found


def upstream_headers(headers: Iterable[tuple[str, str]], number: int) -> list[tuple[str, str]]:
    """One candidate's request headers: the caller's, without rerank's and the body's own."""
    kept = []
    for name, value in headers:
        lowered = name.lower()
        if lowered in WIRE_HEADERS or lowered.startswith(HEADER_PREFIX):
            continue
        if lowered == "idempotency-key":  # each candidate is a different request
            value = f"{value}-rerank-{number}"
        kept.append((name, value))
    return kept


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
    model = body.get("model")
    request = Request(query=query_of(kind, body), context=context, tools=tuple(tools),
                      schema=schema if isinstance(schema, Mapping) else None,
                      model=model if isinstance(model, str) else None)
    return request, validators


# --- reading answers ------------------------------------------------------------------------


def read_reply(kind: Kind, status: int, content: bytes, *, upstream: Any = None) -> dict[str, Any]:
    """The JSON body of an upstream answer holding at least one candidate.

    Raises SendError (carrying ``upstream``) for an error status, a body that is no JSON object
    or not valid text, or a response of another shape than ``kind``'s.
    """
    if status >= 400:
        body: Any
        value, _ = read_json(content[:MAX_LINE_BYTES], "the error body")
        body = value if value is not None else content[:2000].decode("utf-8", "replace")
        detail = body.get("error") if isinstance(body, Mapping) else None
        message = detail.get("message") if isinstance(detail, Mapping) else body
        raise SendError(f"HTTP {status}: {str(message)[:300]}", status=status, body=body, upstream=upstream)
    if len(content) > MAX_LINE_BYTES:
        raise SendError(f"the response body is larger than {MAX_LINE_BYTES:,} bytes", upstream=upstream)
    value, error = read_json(content, "the response body")  # also refuses text that is no Unicode
    if value is None:
        raise SendError(error or "the response body is unusable", upstream=upstream)
    try:
        candidates_of(kind, value)
    except SendError as exc:
        raise SendError(str(exc), upstream=upstream) from None
    return value


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


def split_usage(usage: Any, parts: int) -> list[Any]:
    """``usage`` shared evenly by ``parts`` candidates (one response holding that many choices).

    Whole token counts are split into whole shares that add up to the count exactly; a total
    that was the sum of input and output tokens stays that sum in every share.
    """
    if parts <= 1 or not isinstance(usage, Mapping):
        return [usage] * max(parts, 0)
    shares: list[dict[str, Any]] = [{} for _ in range(parts)]
    for key, value in usage.items():
        if isinstance(value, Mapping):
            for share, part in zip(shares, split_usage(value, parts)):
                share[key] = part
        elif isinstance(value, int) and not isinstance(value, bool):
            for i, share in enumerate(shares):
                share[key] = (i + 1) * value // parts - i * value // parts
        elif isinstance(value, float):
            for share in shares:
                share[key] = value / parts
        else:
            for share in shares:
                share[key] = value
    for parts_of in (("prompt_tokens", "completion_tokens"), ("input_tokens", "output_tokens")):
        if isinstance(usage.get("total_tokens"), int) and all(isinstance(usage.get(k), int) for k in parts_of) \
                and usage["total_tokens"] == sum(usage[k] for k in parts_of):
            for share in shares:
                share["total_tokens"] = sum(share[k] for k in parts_of)
    return shares


def tokens_of(usage: Any) -> int:
    """The total tokens a usage object counts (``total_tokens``, else input plus output)."""
    if not isinstance(usage, Mapping):
        return 0
    total = usage.get("total_tokens")
    if isinstance(total, int) and not isinstance(total, bool):
        return total
    return sum(v for k in ("prompt_tokens", "completion_tokens", "input_tokens", "output_tokens")
               if isinstance(v := usage.get(k), int) and not isinstance(v, bool))


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


# --- answering ------------------------------------------------------------------------------


def explanation(ranking: Ranking, generation: "Generation") -> dict[str, Any]:
    """The ``rerank`` field of a response: the ranking, each candidate's message and model."""
    out = ranking.to_dict()
    for entry in out["candidates"]:
        generated = generation.candidates[entry["index"]]
        entry["message"] = generated.message
        if generated.model:
            entry["model"] = generated.model
        if generated.usage is not None:
            entry["usage"] = generated.usage
        entry["request"] = generated.request
        if generation.rounds:
            entry["round"] = generated.round
    out["failures"] = list(ranking.failures)
    out["requests"] = generation.requests
    out["generation"] = ledger(generation)
    return out


def ledger(generation: "Generation") -> dict[str, Any]:
    """What a call's generation cost and how it went: requests, candidates, tokens, rounds, why it stopped.

    ``lost_usage`` is what failed and unusable candidates spent (their usage plus every ranked
    candidate's adds up to the usage summed over every request).
    """
    lost = None
    for failure in generation.failures:
        lost = add_usage(lost, failure.usage)
    out: dict[str, Any] = {
        "requests": generation.requests,
        "candidates": len(generation.candidates),
        "failed": sum(f.count for f in generation.failures),
        "tokens": tokens_of(generation.usage),
    }
    if lost is not None:
        out["lost_usage"] = lost
    if generation.rounds:
        out["rounds"] = list(generation.rounds)
    if generation.stop:
        out["stop"] = generation.stop
    return out


def ranking_headers(ranking: Ranking) -> dict[str, str]:
    """The ``x-rerank-*`` response headers: the winner's index, counts, the profile."""
    return {
        f"{HEADER_PREFIX}best-index": str(ranking.best_index),
        f"{HEADER_PREFIX}candidates": str(len(ranking)),
        f"{HEADER_PREFIX}failures": str(len(ranking.failures)),
        f"{HEADER_PREFIX}all-failed": "true" if ranking.all_failed else "false",
        f"{HEADER_PREFIX}profile": ranking.profile,
    }


def winner_body(call: Call, generation: "Generation", ranking: Ranking) -> dict[str, Any]:
    """The winning candidate's response with usage summed over every request and the ranking attached."""
    best = generation.candidates[ranking.best_index]
    body = dict(best.response)
    if call.kind == "chat":
        body["choices"] = [{**(best.choice or {}), "index": 0}]
    usage = generation.usage
    for spent in ranking.spent.values():  # a judge's calls are paid for too
        if usage is not None and spent.get("usage"):
            usage = add_usage(usage, _usage_as(call.kind, spent["usage"]))
    if usage is not None:
        body["usage"] = usage
    body["rerank"] = explanation(ranking, generation)
    return body


def _usage_as(kind: Kind, usage: Mapping[str, Any]) -> dict[str, Any]:
    """Chat-shaped usage (a judge's) in the field names of ``kind``'s usage."""
    if kind == "chat":
        return dict(usage)
    return {"input_tokens": usage.get("prompt_tokens", 0), "output_tokens": usage.get("completion_tokens", 0),
            "total_tokens": usage.get("total_tokens", 0)}


def answer(call: Call, generation: "Generation", ranking: Ranking) -> tuple[dict[str, str], bytes]:
    """(headers, content) of the answer to a call: the winner as JSON, or as the API's SSE stream."""
    body = winner_body(call, generation, ranking)
    headers = ranking_headers(ranking)
    if call.stream:
        events = chat_events(body, include_usage=call.include_usage) if call.kind == "chat" \
            else response_events(body)
        headers["content-type"] = "text/event-stream; charset=utf-8"
        return headers, b"".join(events)
    headers["content-type"] = "application/json"
    return headers, encode(body)


def error_body(message: str, kind: str, *, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """An OpenAI-shaped error body: ``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}
