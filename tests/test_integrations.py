"""Frameworks on the routes that rerank (rerank.integrations), each counted against rerank.testing.

Every route must send N upstream requests for one call (the server ignores ``n``, so each
candidate is its own request), answer with the candidate the core ranks first, and keep the
ranking for ``rerank.explain``. The obvious routes that a framework silently bypasses are
pinned too (one request, no ranking), so the README's warnings stay true.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from typing import Any

import pytest
from openai import AsyncOpenAI, OpenAI

import rerank
from conftest import REPO
from conftest_server import MESSAGES, QUESTION, upstream, winner  # noqa: F401 - fixtures
from rerank.testing import Server

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # LiteLLM must not fetch its price list
N = 4


def counted(upstream: Server, call: Any) -> tuple[Any, int]:
    """Run ``call()``; its result and the generation requests the upstream got meanwhile."""
    before = upstream.generation_requests
    result = call()
    return result, upstream.generation_requests - before


def wrapped(upstream: Server, *, asynchronous: bool = False) -> Any:
    make = AsyncOpenAI if asynchronous else OpenAI
    return rerank.wrap(make(base_url=upstream.base_url, api_key="t", max_retries=0), n=N)


def text_of(content: Any) -> str:
    """A LangChain message's text: a string, or content blocks (the Responses API route)."""
    if isinstance(content, str):
        return content
    return "".join(block.get("text", "") for block in content if isinstance(block, dict))


# --- LangChain ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def langchain() -> Any:
    return pytest.importorskip("langchain_openai", reason="langchain-openai is not installed: "
                               "pip install -e '.[integrations]' (make setup does)")


def chat_openai(langchain: Any, upstream: Server, **settings: Any) -> Any:
    from rerank.integrations.langchain import chat_openai as rerank_chat_openai

    base = langchain.ChatOpenAI(model="m", base_url=upstream.base_url, api_key="t", max_retries=0, **settings)
    return rerank_chat_openai(base, n=N)


def test_langchain_invoke_reranks(langchain: Any, upstream: Server, winner: str) -> None:
    message, requests = counted(upstream, lambda: chat_openai(langchain, upstream).invoke(QUESTION))
    assert requests == N
    assert message.content == winner
    ranking = rerank.explain(message)
    assert len(ranking) == N and ranking.best.candidate.content == winner


def test_langchain_stream_reranks(langchain: Any, upstream: Server, winner: str) -> None:
    llm = chat_openai(langchain, upstream)
    chunks, requests = counted(upstream, lambda: list(llm.stream(QUESTION)))
    message = chunks[0]
    for chunk in chunks[1:]:
        message = message + chunk
    assert requests == N
    assert message.content == winner
    assert rerank.explain(message).best.candidate.content == winner


def test_langchain_ainvoke_reranks(langchain: Any, upstream: Server, winner: str) -> None:
    llm = chat_openai(langchain, upstream)

    async def ask() -> Any:
        try:
            return await llm.ainvoke(QUESTION)
        finally:
            await llm.root_async_client.close()

    message, requests = counted(upstream, lambda: asyncio.run(ask()))
    assert requests == N
    assert message.content == winner
    assert len(rerank.explain(message)) == N


def test_langchain_responses_api_reranks(langchain: Any, upstream: Server, winner: str) -> None:
    llm = chat_openai(langchain, upstream, use_responses_api=True)
    message, requests = counted(upstream, lambda: llm.invoke(QUESTION))
    assert requests == N
    assert text_of(message.content) == winner


def test_langchain_copy_leaves_the_original_alone(langchain: Any, upstream: Server) -> None:
    base = langchain.ChatOpenAI(model="m", base_url=upstream.base_url, api_key="t", max_retries=0)
    from rerank.integrations.langchain import chat_openai as rerank_chat_openai

    rerank_chat_openai(base, n=N)
    _, requests = counted(upstream, lambda: base.invoke(QUESTION))
    assert requests == 1


def test_langchain_root_client_alone_is_bypassed(langchain: Any, upstream: Server) -> None:
    """The README warns: ChatOpenAI(root_client=wrapped) builds its own client and sends one request."""
    llm = langchain.ChatOpenAI(model="m", base_url=upstream.base_url, api_key="t", max_retries=0,
                               root_client=wrapped(upstream))
    message, requests = counted(upstream, lambda: llm.invoke(QUESTION))
    assert requests == 1
    with pytest.raises(rerank.InputError):
        rerank.explain(message)


# --- LiteLLM ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def litellm() -> Any:
    return pytest.importorskip("litellm", reason="litellm is not installed: pip install -e '.[integrations]' "
                               "(make setup does)")


def litellm_options(upstream: Server) -> dict[str, Any]:
    return {"model": "openai/m", "api_base": upstream.base_url, "api_key": "t"}


def test_litellm_completion_reranks(litellm: Any, upstream: Server, winner: str) -> None:
    client = wrapped(upstream)
    reply, requests = counted(upstream, lambda: litellm.completion(
        messages=MESSAGES, client=client, **litellm_options(upstream)))
    assert requests == N
    assert reply.choices[0].message.content == winner
    assert rerank.explain(reply).best.candidate.content == winner


def test_litellm_acompletion_reranks(litellm: Any, upstream: Server, winner: str) -> None:
    client = wrapped(upstream, asynchronous=True)

    async def ask() -> Any:
        async with client:
            return await litellm.acompletion(messages=MESSAGES, client=client, **litellm_options(upstream))

    reply, requests = counted(upstream, lambda: asyncio.run(ask()))
    assert requests == N
    assert reply.choices[0].message.content == winner
    assert len(rerank.explain(reply)) == N


def test_litellm_responses_reranks_through_the_handler(litellm: Any, upstream: Server, winner: str) -> None:
    from rerank.integrations.litellm import handler

    client = handler(wrapped(upstream))
    reply, requests = counted(upstream, lambda: litellm.responses(
        input=QUESTION, client=client, **litellm_options(upstream)))
    assert requests == N
    assert reply.output[0].content[0].text == winner
    assert rerank.explain(reply).best.candidate.content == winner


def test_litellm_responses_stream_reranks_through_the_handler(litellm: Any, upstream: Server, winner: str) -> None:
    from rerank.integrations.litellm import handler

    client = handler(wrapped(upstream))
    events, requests = counted(upstream, lambda: list(litellm.responses(
        input=QUESTION, client=client, stream=True, **litellm_options(upstream))))
    assert requests == N
    assert events[-1].response.output[0].content[0].text == winner


def test_litellm_aresponses_reranks_through_the_handler(litellm: Any, upstream: Server, winner: str) -> None:
    from rerank.integrations.litellm import handler

    openai_client = wrapped(upstream, asynchronous=True)

    async def ask() -> Any:
        async with openai_client:
            return await litellm.aresponses(input=QUESTION, client=handler(openai_client),
                                            **litellm_options(upstream))

    reply, requests = counted(upstream, lambda: asyncio.run(ask()))
    assert requests == N
    assert reply.output[0].content[0].text == winner


def test_litellm_responses_ignores_a_wrapped_openai_client(litellm: Any, upstream: Server) -> None:
    """The README warns: litellm.responses(client=wrapped) sends one request, through LiteLLM's own HTTP."""
    reply, requests = counted(upstream, lambda: litellm.responses(
        input=QUESTION, client=wrapped(upstream), **litellm_options(upstream)))
    assert requests == 1


def test_litellm_handler_refuses_an_unwrapped_client(litellm: Any, upstream: Server) -> None:
    from rerank.integrations.litellm import handler

    with pytest.raises(rerank.ConfigError, match="rerank.wrap"):
        handler(OpenAI(base_url=upstream.base_url, api_key="t"))


# --- LlamaIndex ---------------------------------------------------------------------------------

LLAMAINDEX_PYTHON = REPO / ".venv-llamaindex" / "bin" / "python"


@pytest.mark.slow  # a subprocess run (make check skips it; make test runs it)
def test_llamaindex_openai_llm_through_the_proxy(upstream: Server, winner: str) -> None:
    """llama-index-llms-openai requires openai<3, rerank openai>=3: they cannot share an environment,
    so LlamaIndex runs from its own (.venv-llamaindex, built by make test) against `rerank serve`."""
    if not LLAMAINDEX_PYTHON.exists():
        reason = (f"{LLAMAINDEX_PYTHON} is missing (make test builds it): LlamaIndex's OpenAI LLM requires "
                  "openai<3 and cannot be installed beside rerank")
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    from rerank.serve import Background, ServeConfig

    proxy = Background(ServeConfig(upstream=upstream.base_url, n=N))
    try:
        before = upstream.generation_requests
        done = subprocess.run([str(LLAMAINDEX_PYTHON), str(REPO / "tests" / "llamaindex_client.py"), proxy.base_url,
                               QUESTION], capture_output=True, text=True, timeout=240)
        requests = upstream.generation_requests - before
    finally:
        proxy.close()
    assert done.returncode == 0, done.stderr[-3000:]
    answers = json.loads(done.stdout)
    assert requests == 3 * N  # chat, complete, stream_chat: each the best of N
    assert answers["chat"] == answers["complete"] == answers["stream"] == winner
    assert rerank.explain(answers["raw"]).best.candidate.content == winner
