"""An OpenAI-compatible server on 127.0.0.1 that answers with given candidates, for offline tests.

    with rerank.testing.serve(candidates=["Paris.", "Lyon."], n_mode="ignore", latency=0.1) as server:
        client = rerank.wrap(OpenAI(base_url=server.base_url, api_key="test"), n=4)

It answers ``POST /v1/chat/completions`` and ``POST /v1/responses`` (streamed too, as the API
streams) and ``GET /v1/models``. Each answer takes the next candidates of a fixed cycle, so a
run is reproducible. With ``pools=`` (a JSONL file of ``{"query", "candidates"}`` lines such as
the benchmark pools) the request's last user message picks the pool whose query it equals, and
each pool has its own cycle. ``n_mode`` says what happens to the chat ``n`` parameter: honoured
(up to ``max_n``), ignored (one choice), or rejected with the 400 error OpenAI gives. ``latency``
delays every answer; :class:`Fault` rules inject error statuses, bad bodies or slow answers.
Every request is recorded in ``server.requests``.

From a shell: ``python -m rerank.testing --pools FILE --port 8000``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Collection, Literal, Mapping, Sequence

from .errors import ConfigError, InputError
from .jsonl import MAX_LINE_BYTES, parse_line
from .sse import chat_events, response_events
from .text import words
from .types import Candidate, coerce_candidates
from .wire import Kind, error_body, kind_of, query_of

__all__ = ["Fault", "Recorded", "Server", "serve"]

NMode = Literal["honour", "ignore", "reject"]
N_MODES: tuple[str, ...] = ("honour", "ignore", "reject")
FaultKind = Literal["status", "bad-body", "body", "slow", "hold"]
HOST = "127.0.0.1"
MAX_LISTED = 20
"""The most queries the 400 for an unknown query lists."""


@dataclass(frozen=True)
class Fault:
    """An error the server injects into some answers.

    ``kind``: ``"status"`` answers with HTTP ``status`` and an OpenAI-shaped error body;
    ``"bad-body"`` answers 200 with a body that is not JSON; ``"body"`` answers 200 with the
    given ``body`` bytes (a scripted hostile answer); ``"slow"`` waits ``seconds`` more before
    answering normally; ``"hold"`` waits until ``release`` (a ``threading.Event``) is set, at
    most ``seconds`` (30 when 0), then answers normally: a slow candidate a test controls. It applies to the generation requests numbered in ``requests``
    (0-based, in arrival order), to those for which ``when(body)`` is true, to a seeded random
    ``fraction`` of them; or, given none of these, to every request.
    """

    kind: FaultKind = "status"
    status: int = 500
    seconds: float = 0.0
    body: bytes = b""
    requests: Collection[int] | None = None
    when: Callable[[Mapping[str, Any]], bool] | None = None
    fraction: float | None = None
    seed: int = 0
    release: threading.Event | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("status", "bad-body", "body", "slow", "hold"):
            raise ConfigError(f"unknown fault kind {self.kind!r}: use status, bad-body, body, slow or hold")
        if self.kind == "hold" and self.release is None:
            raise ConfigError("a hold fault needs release=threading.Event(): the answer waits until it is set")
        if self.kind == "status" and not 400 <= self.status <= 599:
            raise ConfigError(f"a status fault needs an error status (400-599), got {self.status}")
        if self.fraction is not None and not 0 <= self.fraction <= 1:
            raise ConfigError(f"fraction must be between 0 and 1, got {self.fraction}")

    def applies(self, number: int, body: Mapping[str, Any]) -> bool:
        """Whether this fault hits generation request ``number`` with this body."""
        selectors = (self.requests, self.when, self.fraction)
        if all(s is None for s in selectors):
            return True
        if self.requests is not None and number in self.requests:
            return True
        if self.when is not None and self.when(body):
            return True
        return self.fraction is not None and random.Random(f"{self.seed}:{number}").random() < self.fraction


@dataclass(frozen=True)
class Recorded:
    """One request the server received."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: Any


class _Cycle:
    """The candidates of one pool, handed out in a fixed cycle."""

    def __init__(self, candidates: Sequence[Candidate]) -> None:
        self.candidates = list(candidates)
        self.position = 0

    def take(self, count: int) -> list[Candidate]:
        taken = [self.candidates[(self.position + i) % len(self.candidates)] for i in range(count)]
        self.position += count
        return taken


def load_pools(path: str | Path) -> dict[str, list[Candidate]]:
    """Query -> candidates of every line of a pools file; labels and sources are left behind."""
    pools: dict[str, list[Candidate]] = {}
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            if len(raw) > MAX_LINE_BYTES:
                raise InputError(f"{path}: line {number} is longer than {MAX_LINE_BYTES:,} bytes")
            line = parse_line(raw.strip(), number)
            if line.value is None:
                raise InputError(f"{path}: {line.error}")
            query, candidates = line.value.get("query"), line.value.get("candidates")
            if not isinstance(query, str) or not isinstance(candidates, list):
                raise InputError(f'{path}: line {number} needs "query" (a string) and "candidates" (a list)')
            pools.setdefault(query.strip(), coerce_candidates(candidates))
    if not pools:
        raise InputError(f"{path} holds no pools")
    return pools


class Server:
    """A running test server; use it as a context manager (or call ``close()``).

    ``base_url`` is what an OpenAI client takes (ending in ``/v1``); ``requests`` lists every
    request received; ``generation_requests`` counts the chat/responses ones, ``answered`` those
    answered so far.
    """

    def __init__(
        self, *, candidates: Sequence[Any] | None = None, pools: str | Path | None = None,
        n_mode: NMode = "honour", max_n: int | None = None, latency: float = 0.0,
        faults: Fault | Sequence[Fault] = (), model: str = "rerank-testing", port: int = 0,
    ) -> None:
        if candidates is None and pools is None:
            raise ConfigError("give candidates=[...] or pools=FILE: the server answers with them")
        if n_mode not in N_MODES:
            raise ConfigError(f"unknown n_mode {n_mode!r}: use one of {', '.join(N_MODES)}")
        if max_n is not None and max_n < 1:
            raise ConfigError(f"max_n must be at least 1, got {max_n}")
        if latency < 0:
            raise ConfigError(f"latency must be zero or more seconds, got {latency}")
        self._default = _Cycle(coerce_candidates(candidates)) if candidates is not None else None
        self._pools = {q: _Cycle(c) for q, c in load_pools(pools).items()} if pools is not None else {}
        self.n_mode = n_mode
        self.max_n = max_n
        self.latency = latency
        self.faults = (faults,) if isinstance(faults, Fault) else tuple(faults)
        self.model = model
        self.requests: list[Recorded] = []
        self.generation_requests = 0
        self.answered = 0
        self._lock = threading.Lock()
        self._httpd = _HTTPServer((HOST, port), _handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), name="rerank-testing", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``, for ``OpenAI(base_url=...)``."""
        return f"http://{HOST}:{self.port}/v1"

    def close(self) -> None:
        """Stop serving and release the port."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- answering --------------------------------------------------------------------------

    def _record(self, method: str, path: str, headers: Mapping[str, str], body: Any) -> int:
        with self._lock:
            self.requests.append(Recorded(method, path, dict(headers), body))
            if kind_of(method, path) is not None:
                self.generation_requests += 1
                return self.generation_requests - 1
            return -1

    def _take(self, kind: Kind, body: Mapping[str, Any], count: int) -> list[Candidate] | None:
        query = query_of(kind, body).strip()
        with self._lock:
            cycle = self._pools.get(query, self._default)
            return cycle.take(count) if cycle is not None else None

    def _unknown_query(self, query: str) -> str:
        """The 400 message for a query no pool has: what was asked, and the queries it knows."""
        known = list(self._pools)
        shown = "; ".join(repr(q) for q in known[:MAX_LISTED])
        more = f"; and {len(known) - MAX_LISTED} more" if len(known) > MAX_LISTED else ""
        return (f"no pool has this request's last user message as its query: got {query.strip()[:200]!r}; "
                f"the {len(known)} known queries: {shown}{more}")

    def answer(self, method: str, path: str, headers: Mapping[str, str], raw: bytes) -> tuple[int, str, bytes]:
        """(status, content type, body) for one request: what the handler sends back."""
        kind = kind_of(method, path)
        if method == "GET" and path.rstrip("/") == "/v1/models":
            self._record(method, path, headers, None)
            models = {"object": "list", "data": [{"id": self.model, "object": "model", "owned_by": "rerank"}]}
            return _json(200, models)
        if kind is None:
            self._record(method, path, headers, None)
            return _error(404, f"no route for {method} {path}", "not_found_error")
        line = parse_line(raw, 1) if len(raw) <= MAX_LINE_BYTES else None
        body = line.value if line is not None else None
        number = self._record(method, path, headers, body)
        if body is None:
            return _error(400, "the request body must be a JSON object", "invalid_request_error")
        faults = [f for f in self.faults if f.applies(number, body)]
        time.sleep(self.latency + sum(f.seconds for f in faults if f.kind == "slow"))
        for fault in faults:
            if fault.kind == "hold" and fault.release is not None:
                fault.release.wait(fault.seconds or 30.0)
        try:
            return self._answer(kind, body, number, faults)
        finally:
            with self._lock:
                self.answered += 1

    def _answer(self, kind: Kind, body: dict[str, Any], number: int,
                faults: Sequence[Fault]) -> tuple[int, str, bytes]:
        for fault in faults:
            if fault.kind == "status":
                return _error(fault.status, f"injected error {fault.status} on request {number}", "server_error")
            if fault.kind == "bad-body":
                return 200, "application/json", b"this is not JSON {"
            if fault.kind == "body":
                return 200, "application/json", fault.body
        count = body.get("n", 1)
        if kind == "responses" and "n" in body:
            return _error(400, "Unknown parameter: 'n'.", "invalid_request_error", param="n",
                          code="unknown_parameter")
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            return _error(400, f"Invalid value for 'n': {count!r}", "invalid_request_error", param="n")
        if count > 1 and self.n_mode == "reject":
            return _error(400, "Unsupported value: 'n' must be 1 for this model.", "invalid_request_error",
                          param="n", code="unsupported_value")
        if self.n_mode == "ignore":
            count = 1
        elif self.max_n is not None:
            count = min(count, self.max_n)
        candidates = self._take(kind, body, count)
        if candidates is None:
            return _error(400, self._unknown_query(query_of(kind, body)), "invalid_request_error")
        model = body.get("model") or self.model
        prompt_tokens = sum(len(words(json.dumps(body.get(k), ensure_ascii=False)))
                            for k in ("messages", "input", "instructions") if body.get(k))
        if kind == "chat":
            reply = chat_completion(candidates, model=model, prompt_tokens=prompt_tokens)
            events = chat_events(reply, include_usage=bool((body.get("stream_options") or {}).get("include_usage")))
        else:
            reply = response(candidates[0], model=model, prompt_tokens=prompt_tokens)
            events = response_events(reply)
        if body.get("stream"):
            return 200, "text/event-stream; charset=utf-8", b"".join(events)
        return _json(200, reply)


def _json(status: int, body: Any) -> tuple[int, str, bytes]:
    return status, "application/json", json.dumps(body, ensure_ascii=False).encode("utf-8")


def _error(status: int, message: str, kind: str, *, param: str | None = None,
           code: str | None = None) -> tuple[int, str, bytes]:
    return _json(status, error_body(message, kind, param=param, code=code))


def _tokens(candidate: Candidate) -> int:
    return len(words(candidate.text))


def chat_completion(candidates: Sequence[Candidate], *, model: str, prompt_tokens: int) -> dict[str, Any]:
    """A chat completion whose choices are these candidates."""
    choices = []
    for index, candidate in enumerate(candidates):
        message = candidate.to_message()
        message["refusal"] = None
        for number, call in enumerate(message.get("tool_calls") or ()):
            call.setdefault("id", f"call_{index}_{number}")
        choices.append({"index": index, "message": message, "logprobs": None,
                        "finish_reason": "tool_calls" if candidate.tool_calls else "stop"})
    completion_tokens = sum(_tokens(c) for c in candidates)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion", "created": int(time.time()),
        "model": model, "system_fingerprint": "rerank-testing", "choices": choices,
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


def response(candidate: Candidate, *, model: str, prompt_tokens: int) -> dict[str, Any]:
    """A Responses API response whose output is this candidate: a message and/or function calls."""
    output: list[dict[str, Any]] = []
    if candidate.content is not None:
        output.append({
            "id": f"msg_{uuid.uuid4().hex[:24]}", "type": "message", "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": candidate.content, "annotations": [], "logprobs": []}],
        })
    for number, call in enumerate(candidate.tool_calls):
        output.append({"id": f"fc_{uuid.uuid4().hex[:24]}", "type": "function_call", "status": "completed",
                       "call_id": call.id or f"call_{number}", "name": call.name, "arguments": call.arguments})
    output_tokens = _tokens(candidate)
    return {
        "id": f"resp_{uuid.uuid4().hex[:24]}", "object": "response", "created_at": int(time.time()),
        "status": "completed", "model": model, "output": output, "parallel_tool_calls": True,
        "tool_choice": "auto", "tools": [], "error": None, "incomplete_details": None,
        "usage": {"input_tokens": prompt_tokens, "input_tokens_details": {"cached_tokens": 0},
                  "output_tokens": output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
                  "total_tokens": prompt_tokens + output_tokens},
    }


class _HTTPServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that left is no error here
            super().handle_error(request, client_address)


def _handler(server: Server) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # The headers and the body go out in two writes: with Nagle's algorithm the body waited for
        # the client's delayed ACK (about 40 ms on Linux loopback) on every answer.
        disable_nagle_algorithm = True

        def _serve(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if length > MAX_LINE_BYTES:
                status, content_type, payload = _error(413, "request body too large", "invalid_request_error")
                self.close_connection = True
            else:
                raw = self.rfile.read(length) if length else b""
                status, content_type, payload = server.answer(self.command, self.path, dict(self.headers), raw)
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(payload)))
            self.send_header("x-request-id", f"req_{uuid.uuid4().hex[:16]}")
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            pass  # requests are recorded in server.requests instead

    return Handler


def serve(**options: Any) -> Server:
    """Start a :class:`Server` on 127.0.0.1 in a background thread; see its options there."""
    return Server(**options)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m rerank.testing``: serve a pools file or a candidates file until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m rerank.testing", description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--pools", help="JSONL file of {query, candidates} lines (e.g. a benchmark pools file)")
    source.add_argument("--candidates", help="JSON file holding a list of candidates (strings or messages)")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free port)")
    parser.add_argument("--n-mode", choices=N_MODES, default="honour", help="what to do with the chat n parameter")
    parser.add_argument("--max-n", type=int, default=None, help="most choices per answer when honouring n")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds to wait before each answer")
    args = parser.parse_args(argv)
    try:
        candidates = json.loads(Path(args.candidates).read_text()) if args.candidates else None
        server = Server(candidates=candidates, pools=args.pools, n_mode=args.n_mode, max_n=args.max_n,
                        latency=args.latency, port=args.port)
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    sys.stdout.write(f"serving on {server.base_url} (Ctrl-C to stop)\n")
    sys.stdout.flush()
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
