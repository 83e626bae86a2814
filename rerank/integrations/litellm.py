"""LiteLLM: best of N for ``completion``, ``acompletion``, ``responses`` and ``aresponses``.

    import litellm, rerank
    from rerank.integrations.litellm import handler

    client = rerank.wrap(OpenAI(), n=4)
    litellm.completion(model="openai/gpt-4o-mini", messages=..., client=client)      # as is
    litellm.responses(model="openai/gpt-4o-mini", input="...", client=handler(client))

``litellm.completion`` / ``acompletion`` send through the OpenAI client they are given, so a
wrapped client reranks (``rerank.explain`` works on the ModelResponse). ``litellm.responses``
does NOT: it sends through LiteLLM's own HTTP handler and silently ignores an OpenAI client.
:func:`handler` builds that handler around the wrapped client's transport. LiteLLM's handlers
run on httpx, the openai SDK 3.x on httpx2: the bridge below carries each request across.
"""

from __future__ import annotations

from typing import Any

import httpx
import httpx2
from litellm.llms.custom_httpx.http_handler import AsyncHTTPHandler, HTTPHandler

from ..errors import ConfigError
from ..middleware import AsyncRerankTransport, RerankTransport

__all__ = ["AsyncBridge", "Bridge", "handler"]

# The body is handed over decoded and whole; these headers described the wire form.
_WIRE_ONLY = frozenset({"content-encoding", "content-length", "transfer-encoding"})


def _request(request: httpx.Request, content: bytes) -> httpx2.Request:
    return httpx2.Request(request.method, str(request.url), headers=list(request.headers.multi_items()),
                          content=content)


def _response(response: httpx2.Response, request: httpx.Request) -> httpx.Response:
    headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in _WIRE_ONLY]
    return httpx.Response(response.status_code, headers=headers, content=response.content, request=request)


class Bridge(httpx.BaseTransport):
    """An httpx transport sending every request through a wrapped client's httpx2 client."""

    def __init__(self, client: httpx2.Client) -> None:
        self.client = client

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.client.send(_request(request, request.read()))
        response.read()
        return _response(response, request)


class AsyncBridge(httpx.AsyncBaseTransport):
    """The asyncio twin of :class:`Bridge`."""

    def __init__(self, client: httpx2.AsyncClient) -> None:
        self.client = client

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.client.send(_request(request, await request.aread()))
        await response.aread()
        return _response(response, request)


def handler(client: Any) -> HTTPHandler | AsyncHTTPHandler:
    """LiteLLM's HTTP handler around a client made by :func:`rerank.wrap` (OpenAI or AsyncOpenAI).

    Pass it as ``client=`` to ``litellm.responses`` (from an ``OpenAI``) or ``litellm.aresponses``
    (from an ``AsyncOpenAI``).
    """
    http = getattr(client, "_client", None)
    transport = getattr(http, "_transport", None)
    if isinstance(http, httpx2.Client) and isinstance(transport, RerankTransport):
        return HTTPHandler(client=httpx.Client(transport=Bridge(http), timeout=None))
    if isinstance(http, httpx2.AsyncClient) and isinstance(transport, AsyncRerankTransport):
        return AsyncHTTPHandler(transport=AsyncBridge(http), timeout=None)
    raise ConfigError(f"handler takes a client made by rerank.wrap, got {type(client).__name__}: "
                      "wrap it first, handler(rerank.wrap(OpenAI(), n=4))")
