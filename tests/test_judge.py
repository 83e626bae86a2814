"""The optional LLM judge, end to end: the real SDK against rerank.testing servers, one of which
answers the judge's prompts with a scripted choice."""

from __future__ import annotations

import asyncio

import pytest
from openai import AsyncOpenAI, OpenAI

import rerank
from rerank import Candidate, Request
from rerank.errors import ConfigError
from rerank.scorers.judge import LLMJudge, choice_of
from rerank.testing import Fault, serve

QUESTION = "What is the capital of France?"
ANSWERS = ["The capital of France is Paris.", "Paris.", "France's capital city is Paris, on the Seine."]
MESSAGES = [{"role": "user", "content": QUESTION}]


def client_for(server) -> OpenAI:
    return OpenAI(base_url=server.base_url, api_key="test", max_retries=0, timeout=30)


@pytest.mark.parametrize("shown", [1, 2, 3])
def test_the_judges_choice_wins_and_its_call_is_paid_for(shown: int) -> None:
    with serve(candidates=ANSWERS) as upstream, serve(candidates=[f"[[{shown}]]"]) as judge_server:
        judge = LLMJudge(client=client_for(judge_server), model="judge-model")
        client = rerank.wrap(client_for(upstream), n=3, judge=judge)
        response = client.chat.completions.create(model="m", messages=MESSAGES)
        order = LLMJudge.order(Request(query=QUESTION), [Candidate(content=a) for a in ANSWERS])
        picked = order[shown - 1]
        ranking = rerank.explain(response)
        assert ranking.best_index == picked
        assert response.choices[0].message.content == ANSWERS[picked]
        assert ranking.spent["judge"]["calls"] == 1 and ranking.spent["judge"]["failures"] == []
        (judge_request,) = judge_server.requests
        assert judge_request.body["model"] == "judge-model"
        prompt = judge_request.body["messages"][0]["content"]
        assert QUESTION in prompt and all(answer in prompt for answer in ANSWERS)
        assert prompt.index(ANSWERS[order[0]]) < prompt.index(ANSWERS[order[1]]) < prompt.index(ANSWERS[order[2]])
        judge_usage = ranking.spent["judge"]["usage"]
        assert judge_usage["total_tokens"] > 0
        without_judge = rerank.wrap(client_for(upstream), n=3).chat.completions.create(model="m", messages=MESSAGES)
        assert response.usage.total_tokens == without_judge.usage.total_tokens + judge_usage["total_tokens"]


def test_an_unreadable_judge_answer_costs_only_its_vote() -> None:
    # judge=True asks the caller's own (unwrapped) client: this server answers the judge's
    # prompt with the next text of its cycle, which names no candidate.
    with serve(candidates=[*ANSWERS[:2], "I cannot decide."]) as upstream:
        client = rerank.wrap(client_for(upstream), n=2, judge=True)
        response = client.chat.completions.create(model="m", messages=MESSAGES)
        ranking = rerank.explain(response)
        assert response.choices[0].message.content in ANSWERS[:2]
        assert ranking.spent["judge"]["calls"] == 1
        assert "names no candidate" in ranking.spent["judge"]["failures"][0]
        assert {c.raw["judge"] for c in ranking} == {0.0}
        assert upstream.generation_requests == 2  # the candidates' request and the judge's, no fan-out


def test_a_failing_judge_costs_only_its_vote_async() -> None:
    with serve(candidates=ANSWERS) as upstream, serve(candidates=["[[1]]"], faults=Fault("status", 500)) as down:
        judge = LLMJudge(client=client_for(down), model="judge-model")
        client = rerank.wrap(AsyncOpenAI(base_url=upstream.base_url, api_key="test", max_retries=0), n=3, judge=judge)
        response = asyncio.run(client.chat.completions.create(model="m", messages=MESSAGES))
        ranking = rerank.explain(response)
        assert response.choices[0].message.content in ANSWERS
        assert "judge call failed: InternalServerError" in ranking.spent["judge"]["failures"][0]
        assert "usage" not in ranking.spent["judge"] or not ranking.spent["judge"]["usage"]


def test_choice_parsing_and_configuration() -> None:
    assert choice_of("[[2]]", 3) == 2 and choice_of(" 3. ", 3) == 3 and choice_of("The best is [[ 1 ]].", 2) == 1
    assert choice_of("[[4]]", 3) is None and choice_of("Answer 1 or 2", 2) is None and choice_of("", 2) is None
    with pytest.raises(ConfigError, match="give it a client"):
        rerank.Reranker(weights={"judge": 1.0})
    with pytest.raises(ConfigError, match="not reranker="):
        rerank.wrap(OpenAI(base_url="http://127.0.0.1:9/v1", api_key="t"), reranker=rerank.Reranker(), judge=True)
