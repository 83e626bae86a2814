"""``rerank serve``: an OpenAI-compatible proxy that answers with the best of N, for any client.

    rerank serve --upstream https://api.openai.com/v1 -n 4
    curl localhost:8000/v1/chat/completions -H "authorization: Bearer $OPENAI_API_KEY" \\
         -d '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}'

``POST /v1/chat/completions`` and ``POST /v1/responses`` are fanned out to N candidates at the
upstream and answered with the winner, picked by the same code as ``rerank.wrap``
(:mod:`rerank.selection`, :mod:`rerank.wire`); every other ``/v1/*`` request passes through
unchanged. ``GET /healthz`` answers 200 once the models are loaded (503 before), ``GET /metrics``
in Prometheus text. The process keeps no state between requests: run as many as needed behind a
load balancer.

Credentials: the caller's ``Authorization`` goes to the upstream, unless the proxy holds one
upstream key (``upstream_api_key``); then callers must present one of ``api_keys``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any, AsyncIterator, Awaitable, Iterator, Mapping

import httpx2
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request as HTTPRequest
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .errors import AllCandidatesFailedError, ConfigError, RerankError, SendError
from .generate import Generation, agenerate, drop_unusable
from .selection import Options, Selector
from .wire import URLS, WIRE_HEADERS, Call, answer, encode, error_body, kind_of, read_call, read_reply, upstream_headers

__all__ = ["Background", "ServeConfig", "create_app", "run"]

log = logging.getLogger("rerank.serve")

CONFIG_ENV = "RERANK_SERVE_CONFIG"
"""Environment variable through which ``rerank serve`` hands its settings to each worker process."""
LOG_LEVEL_ENV = "RERANK_SERVE_LOG_LEVEL"

# Headers that belong to one hop of a connection and are never forwarded (RFC 9110 7.6.1).
_HOP_HEADERS = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                "transfer-encoding", "upgrade", "host"}
_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass(frozen=True)
class ServeConfig:
    """Everything a proxy process needs; JSON-serialisable so worker processes can be given it."""

    upstream: str
    n: int = 4
    models: tuple[str, ...] = ()
    concurrency: int = 8
    deadline: float | None = None
    reranker_options: dict[str, Any] = field(default_factory=dict)
    upstream_api_key: str | None = None
    api_keys: tuple[str, ...] = ()
    max_body_bytes: int = 8 * 1024 * 1024
    max_n: int = 16
    max_upstream: int = 64
    upstream_keepalive: float = 5.0
    """Seconds an idle upstream connection is kept for reuse."""
    request_timeout: float = 600.0
    log_bodies: bool = False

    def __post_init__(self) -> None:
        if not self.upstream.startswith(("http://", "https://")):
            raise ConfigError(f"the upstream must be an http(s) URL such as https://api.openai.com/v1, "
                              f"got {self.upstream!r}")
        if self.upstream_api_key and not self.api_keys:
            raise ConfigError("with one upstream API key for every caller, give callers their own: "
                              "--api-key KEY or --api-key-file FILE")
        if not 1 <= self.n <= self.max_n:
            raise ConfigError(f"-n must be between 1 and --max-n ({self.max_n}), got {self.n}")
        for name in ("max_body_bytes", "max_upstream"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name.replace('_', '-')} must be at least 1")
        if not self.request_timeout > 0:
            raise ConfigError(f"the request timeout must be positive, got {self.request_timeout}")

    def to_json(self) -> str:
        """The settings as JSON, for :data:`CONFIG_ENV`."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "ServeConfig":
        """Settings written by :meth:`to_json`."""
        data = json.loads(text)
        data["models"], data["api_keys"] = tuple(data["models"]), tuple(data["api_keys"])
        return cls(**data)


class Metrics:
    """Counters and histograms in the Prometheus text format (per process)."""

    def __init__(self) -> None:
        self.counters: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self.histograms: dict[str, list[float]] = {}
        self.help = {
            "rerank_requests_total": ("counter", "HTTP requests answered, by route and status."),
            "rerank_candidates_total": ("counter", "Candidates generated and ranked."),
            "rerank_candidate_failures_total": ("counter", "Candidates lost to upstream or body errors."),
            "rerank_upstream_seconds": ("histogram", "Time to gather the candidates of one request."),
            "rerank_scoring_seconds": ("histogram", "Time to rank the candidates of one request."),
        }

    def count(self, name: str, value: float = 1, **labels: str) -> None:
        """Add ``value`` to a counter."""
        key = (name, tuple(sorted(labels.items())))
        self.counters[key] = self.counters.get(key, 0) + value

    def observe(self, name: str, seconds: float) -> None:
        """Record one duration in a histogram."""
        values = self.histograms.setdefault(name, [0.0] * (len(_BUCKETS) + 2))  # buckets, +Inf, sum
        for i, bound in enumerate(_BUCKETS):
            if seconds <= bound:
                values[i] += 1
        values[len(_BUCKETS)] += 1
        values[-1] += seconds

    def text(self) -> str:
        """The exposition text for ``GET /metrics``."""
        lines = []
        for name, (kind, text) in self.help.items():
            lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
            if kind == "counter":
                for (counter, labels), value in sorted(self.counters.items()):
                    if counter == name:
                        label = ",".join(f'{k}="{v}"' for k, v in labels)
                        lines.append(f"{name}{{{label}}} {value:g}" if label else f"{name} {value:g}")
                continue
            values = self.histograms.get(name, [0.0] * (len(_BUCKETS) + 2))
            for bound, count in zip(_BUCKETS, values):
                lines.append(f'{name}_bucket{{le="{bound:g}"}} {count:g}')
            lines += [f'{name}_bucket{{le="+Inf"}} {values[len(_BUCKETS)]:g}',
                      f"{name}_sum {values[-1]:.6f}", f"{name}_count {values[len(_BUCKETS)]:g}"]
        return "\n".join(lines) + "\n"


def error(status: int, message: str, kind: str, *, code: str | None = None,
          headers: Mapping[str, str] | None = None) -> JSONResponse:
    """An OpenAI-shaped error response."""
    return JSONResponse(error_body(message, kind, code=code), status_code=status, headers=headers)


class Proxy:
    """The state of one proxy process: its settings, upstream client, selector and metrics."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.metrics = Metrics()
        self.selector: Selector | None = None
        self.ready = asyncio.Event()
        self.client: httpx2.AsyncClient | None = None
        self.slots = asyncio.Semaphore(config.max_upstream)
        self.load_error: str | None = None

    # --- lifecycle --------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        """Open the upstream client and load the models in the background; close on shutdown."""
        limits = httpx2.Limits(max_connections=self.config.max_upstream,
                               max_keepalive_connections=self.config.max_upstream,
                               keepalive_expiry=self.config.upstream_keepalive)
        self.client = httpx2.AsyncClient(timeout=httpx2.Timeout(self.config.request_timeout), limits=limits)
        loading = asyncio.create_task(self._load())
        try:
            yield
        finally:
            loading.cancel()
            await self.client.aclose()

    async def _load(self) -> None:
        try:
            self.selector = await asyncio.to_thread(self._build_selector)
        except Exception as exc:  # noqa: BLE001 - reported by /healthz and each request
            self.load_error = f"{type(exc).__name__}: {exc}"
            log.error("loading the models failed: %s", self.load_error)
            return
        self.ready.set()
        log.info("ready: models loaded")

    def _build_selector(self) -> Selector:
        options = Options(n=self.config.n, models=self.config.models, concurrency=self.config.concurrency,
                          deadline=self.config.deadline)
        selector = Selector(options, reranker_options=self.config.reranker_options)
        selector.reranker(()).rank("warm up", ["loading the models", "now"])  # load the embedding model
        return selector

    # --- routes -----------------------------------------------------------------------------

    async def healthz(self, request: HTTPRequest) -> Response:
        """200 once the models are loaded, 503 before (or when loading failed)."""
        if self.ready.is_set():
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "failed" if self.load_error else "loading", "error": self.load_error},
                            status_code=503)

    async def metrics_text(self, request: HTTPRequest) -> Response:
        """Prometheus text exposition."""
        return Response(self.metrics.text(), media_type="text/plain; version=0.0.4; charset=utf-8")

    async def api(self, request: HTTPRequest) -> Response:
        """Any ``/v1/*`` request: best of N for generation calls, passed through otherwise."""
        start = time.monotonic()
        facts: dict[str, Any] = {}
        response: Response
        try:
            response = await self._api(request, facts)
        except Exception as exc:  # noqa: BLE001 - a bug must still answer in the API's shape
            log.exception("internal error on %s %s", request.method, request.url.path)
            response = error(500, f"internal error in the rerank proxy: {type(exc).__name__}", "server_error")
        self._log(request, response.status_code, facts, time.monotonic() - start)
        return response

    async def _api(self, request: HTTPRequest, facts: dict[str, Any]) -> Response:
        denied = self._check_key(request)
        if denied is not None:
            return denied
        raw = await self._read_body(request)
        if isinstance(raw, Response):
            return raw
        if self.config.log_bodies:
            facts["body"] = raw.decode("utf-8", "replace")
        path = request.url.path
        try:
            call = read_call(request.method, path, request.headers.get, raw)
        except ConfigError as exc:
            return error(400, str(exc), "invalid_request_error")
        if call is None:
            if kind_of(request.method, path) is not None:
                try:
                    json.loads(raw)
                except ValueError:
                    return error(400, "the request body is not valid JSON", "invalid_request_error")
            return await self._pass_through(request, raw)
        try:
            return await asyncio.wait_for(self._rerank(request, call, facts), self.config.request_timeout)
        except asyncio.TimeoutError:
            return error(504, f"no answer within the proxy's deadline of {self.config.request_timeout:g} s",
                         "timeout", code="deadline_exceeded")

    def _check_key(self, request: HTTPRequest) -> Response | None:
        if not self.config.api_keys:
            return None
        given = request.headers.get("authorization", "")
        token = given[7:].strip() if given[:7].lower() == "bearer " else ""
        matched = False
        for key in self.config.api_keys:  # every key compared, in constant time each
            matched |= hmac.compare_digest(token.encode(), key.encode())
        if matched:
            return None
        return error(401, "missing or unknown API key: send Authorization: Bearer <a key of this proxy>",
                     "invalid_request_error", code="invalid_api_key")

    async def _read_body(self, request: HTTPRequest) -> bytes | Response:
        limit = self.config.max_body_bytes
        too_big = error(413, f"the request body is larger than the proxy's limit of {limit:,} bytes",
                        "invalid_request_error", code="request_too_large")
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return too_big
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                return too_big
            chunks.append(chunk)
        return b"".join(chunks)

    def _target(self, request: HTTPRequest) -> str:
        path = request.url.path.removeprefix("/v1")
        query = f"?{request.url.query}" if request.url.query else ""
        return f"{self.config.upstream.rstrip('/')}{path}{query}"

    def _headers(self, request: HTTPRequest, number: int) -> list[tuple[str, str]]:
        pairs = [(k, v) for k, v in request.headers.items()
                 if k.lower() not in _HOP_HEADERS and k.lower() != "accept-encoding"]
        if self.config.upstream_api_key:
            pairs = [(k, v) for k, v in pairs if k.lower() != "authorization"]
            pairs.append(("authorization", f"Bearer {self.config.upstream_api_key}"))
        return upstream_headers(pairs, number)

    async def _pass_through(self, request: HTTPRequest, raw: bytes) -> Response:
        assert self.client is not None
        upstream = self.client.build_request(request.method, self._target(request),
                                             headers=self._headers(request, 0), content=raw)
        try:
            async with self.slots:
                reply = await self.client.send(upstream, stream=True)
        except httpx2.TimeoutException:
            return error(504, "the upstream did not answer in time", "timeout")
        except httpx2.RequestError as exc:
            return error(502, f"cannot reach the upstream: {type(exc).__name__}", "upstream_error")
        headers = {k: v for k, v in reply.headers.items()
                   if k.lower() not in _HOP_HEADERS and k.lower() not in WIRE_HEADERS}

        async def body() -> AsyncIterator[bytes]:
            try:
                async for chunk in reply.aiter_bytes():
                    yield chunk
            finally:
                await reply.aclose()

        return StreamingResponse(body(), status_code=reply.status_code, headers=headers)

    async def _rerank(self, request: HTTPRequest, call: Call, facts: dict[str, Any]) -> Response:
        if not self.ready.is_set():
            if self.load_error:
                return error(503, f"the proxy could not load its models: {self.load_error}", "server_error")
            await self.ready.wait()
        selector = self.selector
        assert selector is not None and self.client is not None
        target = self._target(request)
        try:
            options = selector.options_for(call, target)
        except ConfigError as exc:
            return error(400, str(exc), "invalid_request_error")
        if options.n > self.config.max_n:
            return error(400, f"n = {options.n} is above this proxy's limit of {self.config.max_n}",
                         "invalid_request_error", code="n_too_large")
        facts["n"] = options.n
        numbers = iter(range(1_000_000))
        client = self.client

        async def send(body: dict[str, Any]) -> dict[str, Any]:
            upstream = client.build_request("POST", target, headers=self._headers(request, next(numbers)),
                                            content=encode(body))
            try:
                async with self.slots:
                    reply = await client.send(upstream)
            except httpx2.RequestError as exc:
                raise SendError(f"{type(exc).__name__}: {exc}", upstream=exc) from exc
            return read_reply(call.kind, reply.status_code, reply.content, upstream=reply)

        started = time.monotonic()
        generation = await _until_disconnect(request, agenerate(
            call.body, send, kind=call.kind, n=options.n, models=options.models, native_n=options.native_n,
            concurrency=options.concurrency, deadline=options.deadline))
        if generation is None:
            facts["disconnected"] = True
            return Response(status_code=499)
        facts["upstream_s"] = time.monotonic() - started
        self.metrics.observe("rerank_upstream_seconds", facts["upstream_s"])
        selector.learn(target, generation)
        drop_unusable(generation)
        self.metrics.count("rerank_candidates_total", len(generation.candidates))
        self.metrics.count("rerank_candidate_failures_total", sum(f.count for f in generation.failures))
        facts["candidates"], facts["failures"] = len(generation.candidates), len(generation.failures)
        if not generation.candidates:
            return failure_response(generation)
        started = time.monotonic()
        try:
            ranking = await asyncio.to_thread(selector.rank, call, options, generation)
        except AllCandidatesFailedError as exc:
            return error(422, str(exc), "invalid_request_error", code="all_candidates_failed")
        except RerankError as exc:
            return error(400, str(exc), "invalid_request_error")
        facts["scoring_s"] = time.monotonic() - started
        self.metrics.observe("rerank_scoring_seconds", facts["scoring_s"])
        facts["winner"] = ranking.best_index
        headers, content = answer(call, generation, ranking)
        if call.stream:
            return StreamingResponse(_events(content), headers=headers)
        return Response(content, headers=headers)

    def _log(self, request: HTTPRequest, status: int, facts: Mapping[str, Any], seconds: float) -> None:
        self.metrics.count("rerank_requests_total", route=_route(request), status=str(status))
        parts = [request.method, request.url.path, str(status)]
        for key in ("n", "candidates", "failures", "winner"):
            if key in facts:
                parts.append(f"{key}={facts[key]}")
        for key in ("upstream_s", "scoring_s"):
            if key in facts:
                parts.append(f"{key}={facts[key]:.3f}")
        parts.append(f"total_s={seconds:.3f}")
        if facts.get("disconnected"):
            parts.append("client-disconnected")
        if "body" in facts:
            parts.append(f"body={facts['body']}")
        log.info(" ".join(parts))


def _route(request: HTTPRequest) -> str:
    path = request.url.path.rstrip("/")
    return path if path in URLS else "other"


def _events(content: bytes) -> Iterator[bytes]:
    """A replayed SSE stream, one event per chunk."""
    for event in content.split(b"\n\n"):
        if event:
            yield event + b"\n\n"


async def _until_disconnect(request: HTTPRequest, work: Awaitable[Generation]) -> Generation | None:
    """``work``'s result, or None (``work`` cancelled) when the client goes away first."""
    task = asyncio.ensure_future(work)

    async def gone() -> None:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                return

    watcher = asyncio.ensure_future(gone())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:  # the request's own deadline
        task.cancel()
        raise
    finally:
        watcher.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return None


def failure_response(generation: Generation) -> Response:
    """No candidate: the upstream's own error status and body when there is one, else a 502/504."""
    upstreams = [f.error.upstream for f in generation.failures if isinstance(f.error, SendError)]
    for upstream in upstreams:
        if isinstance(upstream, httpx2.Response) and upstream.status_code >= 400:
            headers = {k: v for k, v in upstream.headers.items()
                       if k.lower() not in _HOP_HEADERS and k.lower() not in WIRE_HEADERS}
            return Response(upstream.content, status_code=upstream.status_code, headers=headers)
    messages = "; ".join(generation.failure_messages()) or "no request made"
    if any(isinstance(u, httpx2.TimeoutException) for u in upstreams):
        return error(504, f"the upstream did not answer in time: {messages}", "timeout")
    return error(502, f"no usable candidate from the upstream: {messages}", "upstream_error")


def create_app(config: ServeConfig) -> Starlette:
    """The ASGI application of one proxy process."""
    proxy = Proxy(config)

    async def not_found(request: HTTPRequest, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        message = f"no route for {request.method} {request.url.path}: this proxy answers /v1/*, " \
                  f"GET /healthz and GET /metrics"
        response = error(status, message, "invalid_request_error", code="unknown_route")
        proxy._log(request, response.status_code, {}, 0.0)
        return response

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    app = Starlette(
        routes=[Route("/healthz", proxy.healthz, methods=["GET"]),
                Route("/metrics", proxy.metrics_text, methods=["GET"]),
                Route("/v1/{rest:path}", proxy.api, methods=methods)],
        exception_handlers={404: not_found, 405: not_found}, lifespan=proxy.lifespan,
    )
    app.state.proxy = proxy
    return app


def app_from_env() -> Starlette:
    """The application for uvicorn's ``--factory`` worker processes, configured by :data:`CONFIG_ENV`."""
    configure_logging(os.environ.get(LOG_LEVEL_ENV, "info"))
    return create_app(ServeConfig.from_json(os.environ[CONFIG_ENV]))


def configure_logging(level: str) -> None:
    """Log lines on stderr, in each worker process; the HTTP client's own lines are left out."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx2").setLevel(logging.WARNING)  # one line per request is ours; URLs may hold keys


class Background:
    """A proxy served by uvicorn on 127.0.0.1 in a thread of this process (for tests and benchmarks).

    Returns once ``/healthz`` says ready; ``close()`` (or leaving the ``with`` block) shuts it down.
    """

    def __init__(self, config: ServeConfig, *, ready_timeout: float = 120.0) -> None:
        import socket
        import threading

        import uvicorn

        self.app = create_app(config)
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.port = int(self._sock.getsockname()[1])
        self._server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", timeout_graceful_shutdown=5))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name="rerank-serve", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + ready_timeout
        while True:
            try:
                if httpx2.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx2.HTTPError:
                pass
            if time.monotonic() > deadline or not self._thread.is_alive():
                self.close()
                raise RuntimeError(f"the proxy did not get ready within {ready_timeout:g} s")
            time.sleep(0.2)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``, for an OpenAI client's ``base_url``."""
        return f"{self.url}/v1"

    def close(self) -> None:
        """Shut the server down (in-flight requests get 5 s) and release the port."""
        self._server.should_exit = True
        self._thread.join(30)
        self._sock.close()

    def __enter__(self) -> "Background":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run(config: ServeConfig, *, host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
        graceful_timeout: int = 30, log_level: str = "info") -> None:
    """Serve until SIGINT/SIGTERM; in-flight requests get ``graceful_timeout`` seconds to finish."""
    import uvicorn

    os.environ[CONFIG_ENV] = config.to_json()
    os.environ[LOG_LEVEL_ENV] = log_level
    uvicorn.run("rerank.serve:app_from_env", factory=True, host=host, port=port, workers=workers,
                timeout_graceful_shutdown=graceful_timeout, access_log=False, log_level=log_level,
                timeout_keep_alive=5)


