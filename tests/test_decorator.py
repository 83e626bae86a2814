"""rerank.best_of: best-of-N for any sync or async function that returns text or a message."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest

import rerank
from rerank.decorator import as_candidate

from conftest_server import ANSWERS, QUESTION


def cycling(values: list[Any]):
    """A thread-safe source handing out ``values`` in a cycle, as a model's answers would come."""
    source = itertools.cycle(values)
    lock = threading.Lock()

    def take() -> Any:
        with lock:
            return next(source)

    return take


def core_pick(candidates: list[Any], **request: Any) -> Any:
    ranking = rerank.Reranker().rank(rerank.Request(**request), candidates)
    return candidates[ranking.best_index]


def test_sync_function_returns_the_cores_pick_among_its_results():
    take = cycling(ANSWERS)
    calls = []

    @rerank.best_of(n=4)
    def ask(prompt: str, *, temperature: float = 1.0) -> str:
        """Ask the model."""
        calls.append((prompt, temperature))
        return take()

    assert ask.__doc__ == "Ask the model." and ask.__name__ == "ask"
    answer = ask(QUESTION, temperature=0.5)
    assert answer == core_pick(ANSWERS, query=QUESTION)
    assert calls == [(QUESTION, 0.5)] * 4
    answer, ranking = ask.rank(QUESTION)
    assert len(ranking) == 4 and ranking.best.candidate.content == answer


def test_async_function_and_messages_as_the_query():
    take = cycling(ANSWERS)

    @rerank.best_of(n=4, concurrency=2)
    async def chat(messages: list[dict[str, str]]) -> dict[str, Any]:
        await asyncio.sleep(0.01)
        return {"role": "assistant", "content": take()}

    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": QUESTION}]
    answer, ranking = asyncio.run(chat.rank(messages))
    assert answer["content"] == core_pick(ANSWERS, query=QUESTION)
    assert ranking.profile == "chat"
    assert asyncio.run(chat(messages))["content"] == answer["content"]


def test_query_and_context_options_name_parameters_or_compute_them():
    take = cycling(ANSWERS)
    context = "Paris is the capital of France."

    @rerank.best_of(n=4, query="question", context=lambda arguments: arguments["source"])
    def answer(source: str, question: str) -> str:
        return take()

    chosen, ranking = answer.rank(context, QUESTION)
    assert ranking.profile == "grounded"
    assert chosen == core_pick(ANSWERS, query=QUESTION, context=context)
    with pytest.raises(rerank.ConfigError, match="no argument named"):
        rerank.best_of(n=2, query="missing")(lambda prompt: "x")("hi")


def test_failed_calls_are_left_out_and_all_failing_raises_the_functions_error():
    attempts = itertools.count()

    @rerank.best_of(n=4)
    def flaky(prompt: str) -> str:
        if next(attempts) % 2:
            raise TimeoutError("the model took too long")
        return f"{prompt} Paris."

    answer, ranking = flaky.rank(QUESTION)
    assert len(ranking) == 2 and len(ranking.failures) == 2
    assert all("TimeoutError" in f for f in ranking.failures)

    @rerank.best_of(n=3)
    async def broken(prompt: str) -> str:
        raise ConnectionError("no route to the model")

    with pytest.raises(ConnectionError, match="no route"):
        asyncio.run(broken(QUESTION))


def test_deadline_keeps_the_results_in_by_then():
    delays = cycling([0.0, 0.0, 1.5, 1.5])

    @rerank.best_of(n=4, deadline=0.5)
    def slow(prompt: str) -> str:
        delay = delays()
        time.sleep(delay)
        return f"answered after {delay} seconds"

    answer, ranking = slow.rank(QUESTION)
    assert len(ranking) == 2 and answer == "answered after 0.0 seconds"


def test_tools_turn_the_tools_validator_on_for_tool_call_results():
    weather = {"type": "function", "function": {
        "name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                              "required": ["city"]}}}
    results = cycling([
        {"content": None, "tool_calls": [{"function": {"name": "get_weather", "arguments": '{"town": "Paris"}'}}]},
        {"content": None, "tool_calls": [{"function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"content": None, "tool_calls": [{"function": {"name": "get_weather", "arguments": '{"town": "Paris"}'}}]},
    ])

    @rerank.best_of(n=3, tools=[weather])
    def call_tools(prompt: str) -> dict[str, Any]:
        return results()

    answer, ranking = call_tools.rank("Weather in Paris?")
    assert json.loads(answer["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris"}
    assert [c.passed for c in ranking] == [True, False, False]


def test_as_candidate_reads_the_shapes_other_sdks_return():
    assert as_candidate("plain text").content == "plain text"
    openai_like = {"role": "assistant", "content": None,
                   "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": "{}"}}]}
    assert as_candidate(openai_like).tool_calls[0].name == "f"
    anthropic_like = SimpleNamespace(content=[
        SimpleNamespace(type="text", text="Looking it up."),
        SimpleNamespace(type="tool_use", id="t1", name="get_weather", input={"city": "Paris"}),
    ])
    candidate = as_candidate(anthropic_like)
    assert candidate.content == "Looking it up."
    assert (candidate.tool_calls[0].name, json.loads(candidate.tool_calls[0].arguments)) == (
        "get_weather", {"city": "Paris"})
    langchain_like = SimpleNamespace(content="", tool_calls=[{"name": "g", "args": {"x": 1}, "id": "1"}])
    assert as_candidate(langchain_like).tool_calls[0].arguments == '{"x": 1}'
    assert as_candidate(SimpleNamespace(text="gemini style")).content == "gemini style"
    with pytest.raises(rerank.InputError, match="to_candidate"):
        as_candidate(42)


def test_to_candidate_option_and_bad_options():
    @rerank.best_of(n=2, to_candidate=lambda result: result["answer"])
    def ask(prompt: str) -> dict[str, str]:
        return {"answer": "Paris is the capital of France."}

    assert ask(QUESTION) == {"answer": "Paris is the capital of France."}
    with pytest.raises(rerank.ConfigError):
        rerank.best_of(n=0)
    with pytest.raises(rerank.ConfigError):
        rerank.best_of(n=2, reranker=rerank.Reranker(), strict=True)
