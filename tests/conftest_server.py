"""Fixtures for the tests that talk to rerank.testing servers through the real openai SDK.

Import what a test module needs: ``from conftest_server import ...`` (pytest puts tests/ on the path).
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import pytest

from rerank.testing import Server, serve

QUESTION = "What is the capital of France?"
MESSAGES = [{"role": "user", "content": QUESTION}]
ANSWERS = [
    "The capital of France is Paris.",
    "I enjoy long walks on the beach with my dog.",
    "Paris, on the Seine, is the capital and largest city of France.",
    "Bananas are rich in potassium.",
]


@pytest.fixture
def start_server() -> Iterator[Callable[..., Server]]:
    """Start rerank.testing servers with the given options; all are closed after the test."""
    servers: list[Server] = []

    def start(**options: Any) -> Server:
        options.setdefault("candidates", ANSWERS)
        server = serve(**options)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def generation_bodies(server: Server) -> list[dict[str, Any]]:
    """The bodies of the chat/responses requests a server received, in arrival order."""
    return [r.body for r in server.requests if r.path.startswith("/v1/chat") or r.path.startswith("/v1/responses")]


@pytest.fixture(scope="module")
def upstream() -> Iterator[Server]:
    """One server for a module, handing out ANSWERS one per request (``n`` ignored: N candidates, N requests)."""
    with serve(candidates=ANSWERS, n_mode="ignore") as server:
        yield server


@pytest.fixture(scope="module")
def winner() -> str:
    """What the core ranks first among the candidates the server hands out, for QUESTION."""
    import rerank

    return ANSWERS[rerank.Reranker().rank({"query": QUESTION}, ANSWERS).best_index]
