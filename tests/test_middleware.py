"""rerank.wrap: the real openai SDK, wrapped, against rerank.testing servers over real HTTP."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import jsonschema
import openai
import pydantic
import pytest
from openai import AsyncOpenAI, OpenAI
from openai.types.chat import ChatCompletion
from openai.types.responses import Response

import rerank
from conftest import read_pools
from conftest_server import ANSWERS, MESSAGES, QUESTION, generation_bodies, start_server  # noqa: F401
from rerank.errors import SendError
from rerank.generate import Planner
from rerank.wire import add_usage, rejects_n
from rerank.testing import Fault


def wrapped(server, *, max_retries: int = 0, timeout: float = 30.0, **options: Any) -> OpenAI:
    client = OpenAI(base_url=server.base_url, api_key="test", max_retries=max_retries, timeout=timeout)
    return rerank.wrap(client, **options)


def awrapped(server, **options: Any) -> AsyncOpenAI:
    return rerank.wrap(AsyncOpenAI(base_url=server.base_url, api_key="test", max_retries=0), **options)


def expected_best(candidates: list[Any], **request: Any) -> rerank.Candidate:
    """What the core picks for these candidates: the contract the middleware must keep."""
    ranking = rerank.Reranker().rank(rerank.Request(**request), candidates)
    return rerank.Candidate.coerce(candidates[ranking.best_index])


def served(message: Any) -> rerank.Candidate:
    """The candidate an SDK message object holds (tool call ids left out)."""
    calls = [{"function": {"name": c.function.name, "arguments": c.function.arguments}}
             for c in message.tool_calls or ()]
    return rerank.Candidate.coerce({"content": message.content, "tool_calls": calls})


def without_ids(candidate: rerank.Candidate) -> rerank.Candidate:
    return rerank.Candidate(candidate.content, tuple(rerank.ToolCall(c.name, c.arguments) for c in candidate.tool_calls))


# --- the basic contract: same class, SDK types, the core's pick, every score explained ----------


def test_sync_chat_returns_the_sdks_completion_holding_the_cores_pick(start_server):
    server = start_server()
    client = wrapped(server, n=4)
    assert type(client) is OpenAI
    completion = client.chat.completions.create(model="m", messages=MESSAGES)
    assert isinstance(completion, ChatCompletion)
    assert len(completion.choices) == 1 and completion.choices[0].index == 0
    assert completion.choices[0].message.content == expected_best(ANSWERS, query=QUESTION).content
    ranking = rerank.explain(completion)
    assert sorted(c.index for c in ranking) == [0, 1, 2, 3]
    assert sorted(c.candidate.content for c in ranking) == sorted(ANSWERS)
    assert ranking.best.candidate.content == completion.choices[0].message.content
    assert all(c.components and c.raw for c in ranking)
    assert [c.score for c in ranking] == sorted((c.score for c in ranking), reverse=True)


def test_async_chat_and_responses(start_server):
    server = start_server(n_mode="reject")

    async def calls() -> tuple[Any, Any]:
        client = awrapped(server, n=3)
        assert type(client) is AsyncOpenAI
        chat = await client.chat.completions.create(model="m", messages=MESSAGES)
        response = await client.responses.create(model="m", input=QUESTION, instructions="Answer briefly.")
        return chat, response

    chat, response = asyncio.run(calls())
    assert isinstance(chat, ChatCompletion) and isinstance(response, Response)
    first_three = [rerank.Candidate.coerce(a) for a in ANSWERS[:3]]
    assert served(chat.choices[0].message) in first_three
    assert len(rerank.explain(chat)) == len(rerank.explain(response)) == 3
    chosen = rerank.explain(response).best.candidate.content
    assert response.output_text == chosen
    assert all("n" not in body for body in generation_bodies(server)[-3:])  # Responses API has no n


def test_sync_responses_with_a_system_context_is_ranked_as_grounded(start_server):
    server = start_server(n_mode="ignore")
    response = wrapped(server, n=4).responses.create(
        model="m", instructions="Paris is the capital of France.", input=[{"role": "user", "content": QUESTION}],
    )
    ranking = rerank.explain(response)
    assert ranking.profile == "grounded"
    assert response.output_text == expected_best(ANSWERS, query=QUESTION,
                                                 context="Paris is the capital of France.").content


def test_context_option_replaces_the_system_message(start_server):
    server = start_server()
    messages = [{"role": "system", "content": "You are terse."}, *MESSAGES]
    plain = wrapped(server, n=2, context=lambda body: None).chat.completions.create(model="m", messages=messages)
    assert rerank.explain(plain).profile == "chat"
    grounded = wrapped(server, n=2).chat.completions.create(model="m", messages=messages)
    assert rerank.explain(grounded).profile == "grounded"


# --- streaming ------------------------------------------------------------------------------


def test_streaming_chat_replays_the_chosen_answer(start_server):
    server = start_server()
    client = wrapped(server, n=4)
    whole = client.chat.completions.create(model="m", messages=MESSAGES)
    stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True,
                                            stream_options={"include_usage": True})
    assert isinstance(stream, openai.Stream)
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert len(chunks) > 3
    assert chunks[-1].usage.total_tokens == whole.usage.total_tokens
    assert rerank.explain(chunks[-1]).best.candidate.content == text
    assert all(not body.get("stream") for body in generation_bodies(server))


def test_streaming_responses_with_the_sdks_stream_helper(start_server):
    server = start_server(n_mode="ignore")

    async def run() -> tuple[list[str], Any]:
        client = awrapped(server, n=4)
        async with client.responses.stream(model="m", input=QUESTION) as stream:
            deltas = [e.delta async for e in stream if e.type == "response.output_text.delta"]
            return deltas, await stream.get_final_response()

    deltas, final = asyncio.run(run())
    assert "".join(deltas) == final.output_text == rerank.explain(final).best.candidate.content
    assert final.usage.output_tokens == sum(len(rerank.text.words(a)) for a in ANSWERS)


# --- the SDK's own wrappers keep working ----------------------------------------------------


def test_with_options_raw_and_streaming_responses(start_server):
    server = start_server()
    client = wrapped(server, n=4).with_options(timeout=20, max_retries=1)
    completion = client.chat.completions.create(model="m", messages=MESSAGES)
    assert len(rerank.explain(completion)) == 4

    raw = client.chat.completions.with_raw_response.create(model="m", messages=MESSAGES)
    parsed = raw.parse()
    assert isinstance(parsed, ChatCompletion)
    assert raw.headers["x-rerank-best-index"] == str(rerank.explain(raw).best_index)
    assert raw.headers["x-rerank-candidates"] == "4"

    with client.chat.completions.with_streaming_response.create(model="m", messages=MESSAGES) as response:
        streamed = response.parse()
    assert streamed.choices[0].message.content == rerank.explain(streamed).best.candidate.content
    assert [len(b["messages"]) for b in generation_bodies(server)] == [1, 1, 1]


def test_parse_with_a_pydantic_model_gets_a_schema_valid_candidate(start_server):
    class City(pydantic.BaseModel):
        city: str
        country: str

    candidates = ['{"city": 7, "country": "France"}', "Paris.", '{"city": "Paris", "country": "France"}',
                  '{"country": "France"}']
    server = start_server(candidates=candidates, n_mode="ignore")
    completion = wrapped(server, n=4).chat.completions.parse(model="m", messages=MESSAGES, response_format=City)
    assert completion.choices[0].message.parsed == City(city="Paris", country="France")
    ranking = rerank.explain(completion)
    assert ranking.best.passed and not ranking.all_failed
    assert {check.validator for c in ranking for check in c.checks} == {"json-schema"}


# --- generation: n honoured, ignored, rejected, capped; several models; overrides --------------


SINGLES = [None] * 4


@pytest.mark.parametrize(
    ("options", "first_call", "second_call"),
    [({}, [4], [4]), ({"n_mode": "ignore"}, [4, None, None, None], SINGLES),
     ({"n_mode": "reject"}, [4, None, None, None, None], SINGLES), ({"max_n": 3}, [4, None], SINGLES)],
    ids=["honour", "ignore", "reject", "capped"],
)
def test_n_is_used_topped_up_or_replaced(start_server, options, first_call, second_call):
    server = start_server(**options)
    client = wrapped(server, n=4)
    completion = client.chat.completions.create(model="m", messages=MESSAGES)
    assert [b.get("n") for b in generation_bodies(server)] == first_call
    ranking = rerank.explain(completion)
    assert sorted(c.candidate.content for c in ranking) == sorted(ANSWERS)
    assert not ranking.failures
    client.with_options(timeout=10).chat.completions.create(model="m", messages=MESSAGES)
    assert [b.get("n") for b in generation_bodies(server)[len(first_call):]] == second_call


def test_usage_is_summed_over_every_request(start_server):
    wrapped_server, direct_server = start_server(n_mode="ignore"), start_server(n_mode="ignore")
    completion = wrapped(wrapped_server, n=4).chat.completions.create(model="m", messages=MESSAGES)
    direct = OpenAI(base_url=direct_server.base_url, api_key="test", max_retries=0)
    usages = [direct.chat.completions.create(model="m", messages=MESSAGES).usage for _ in range(4)]
    assert completion.usage.prompt_tokens == sum(u.prompt_tokens for u in usages)
    assert completion.usage.completion_tokens == sum(u.completion_tokens for u in usages)
    assert completion.usage.total_tokens == sum(u.total_tokens for u in usages)


def test_candidates_spread_over_several_models(start_server):
    server = start_server()
    completion = wrapped(server, n=5, models=["small", "large"]).chat.completions.create(model="m", messages=MESSAGES)
    bodies = generation_bodies(server)
    assert sorted((b["model"], b.get("n")) for b in bodies) == [("large", 2), ("small", 3)]
    ranking = rerank.explain(completion)
    models = [c["model"] for c in completion.model_extra["rerank"]["candidates"]]
    assert sorted(models) == ["large"] * 2 + ["small"] * 3
    assert len(ranking) == 5


def test_per_call_overrides_are_applied_and_stripped(start_server):
    server = start_server(n_mode="ignore")
    client = wrapped(server, n=4)
    by_body = client.chat.completions.create(model="m", messages=MESSAGES,
                                             extra_body={"rerank": {"n": 2, "weights": {"structure": 0}}})
    assert len(rerank.explain(by_body)) == 2
    assert "structure" not in rerank.explain(by_body).weights
    by_header = client.chat.completions.create(model="m", messages=MESSAGES, extra_headers={"x-rerank-n": "3"})
    assert len(rerank.explain(by_header)) == 3
    assert all("rerank" not in r.body for r in server.requests)
    assert all(not any(h.lower().startswith("x-rerank") for h in r.headers) for r in server.requests)
    with pytest.raises(rerank.ConfigError, match="weights"):
        client.chat.completions.create(model="m", messages=MESSAGES, extra_body={"rerank": {"weights": {"nope": 1}}})


def test_requests_that_are_not_generations_pass_through(start_server):
    server = start_server()
    client = wrapped(server, n=4)
    assert [m.id for m in client.models.list()] == ["rerank-testing"]
    several = client.chat.completions.create(model="m", messages=MESSAGES, n=2)
    assert len(several.choices) == 2 and "rerank" not in (several.model_extra or {})


# --- time and failure -----------------------------------------------------------------------


def test_partial_failure_is_left_out_and_reported(start_server):
    server = start_server(n_mode="ignore", faults=Fault(status=503, requests={1}))
    completion = wrapped(server, n=4).chat.completions.create(model="m", messages=MESSAGES)
    ranking = rerank.explain(completion)
    assert len(ranking) == 3
    assert len(ranking.failures) == 1 and "503" in ranking.failures[0]
    assert completion.choices[0].message.content == ranking.best.candidate.content


def test_every_candidate_failing_raises_the_sdks_own_error(start_server):
    failing = start_server(n_mode="ignore", faults=Fault(status=503))
    with pytest.raises(openai.InternalServerError) as caught:
        wrapped(failing, n=3, native_n=False).chat.completions.create(model="m", messages=MESSAGES)
    assert caught.value.status_code == 503
    assert len(generation_bodies(failing)) == 3

    retried = start_server(n_mode="ignore", faults=Fault(status=503, requests={0, 1, 2}))
    completion = wrapped(retried, n=3, native_n=False, max_retries=1).chat.completions.create(
        model="m", messages=MESSAGES)
    assert len(rerank.explain(completion)) == 3  # the SDK's retry ran the whole fan-out again

    garbled = start_server(n_mode="reject", faults=Fault(kind="bad-body"))
    with pytest.raises(openai.APIResponseValidationError):
        wrapped(garbled, n=2).responses.create(model="m", input=QUESTION)

    slow = start_server(faults=Fault(kind="slow", seconds=2))
    with pytest.raises(openai.APITimeoutError):
        wrapped(slow, n=2, timeout=0.3).chat.completions.create(model="m", messages=MESSAGES)


def test_deadline_picks_among_the_candidates_done_by_then(start_server):
    server = start_server(n_mode="ignore", faults=Fault(kind="slow", seconds=2, requests={1, 2}))
    completion = wrapped(server, n=4, native_n=False, deadline=0.8).chat.completions.create(model="m", messages=MESSAGES)
    ranking = rerank.explain(completion)
    assert len(ranking) == 2
    assert [("deadline" in f) for f in ranking.failures] == [True, True]


def test_deadline_still_waits_for_a_first_candidate(start_server):
    server = start_server(faults=Fault(kind="slow", seconds=0.6))

    async def call() -> Any:
        return await awrapped(server, n=2, native_n=False, deadline=0.1).chat.completions.create(
            model="m", messages=MESSAGES)

    ranking = rerank.explain(asyncio.run(call()))
    assert 1 <= len(ranking) <= 2


def test_all_failing_validation_returns_the_best_marked_or_raises_in_strict_mode(start_server):
    server = start_server(candidates=["Paris.", "It is Paris, of course."])
    json_request = {"model": "m", "messages": MESSAGES, "response_format": {"type": "json_object"}}
    raw = wrapped(server, n=2).chat.completions.with_raw_response.create(**json_request)
    ranking = rerank.explain(raw)
    assert ranking.all_failed and raw.headers["x-rerank-all-failed"] == "true"
    assert raw.parse().choices[0].message.content in ("Paris.", "It is Paris, of course.")
    with pytest.raises(rerank.AllCandidatesFailedError):
        wrapped(server, n=2, strict=True).chat.completions.create(**json_request)


# --- tools and JSON schema turn their validators on -------------------------------------------


WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}}


def call(name: str, arguments: str) -> dict[str, Any]:
    return {"content": None, "tool_calls": [{"type": "function", "function": {"name": name, "arguments": arguments}}]}


def test_tools_request_picks_a_valid_tool_call(start_server):
    candidates = [call("get_wether", '{"city": "Paris"}'), call("get_weather", '{"town": "Paris"}'),
                  call("get_weather", '{"town": "Paris"}'), call("get_weather", '{"city": "Paris"}')]
    server = start_server(candidates=candidates, n_mode="reject")
    ask = {"model": "m", "messages": [{"role": "user", "content": "Weather in Paris?"}], "tools": [WEATHER]}
    completion = wrapped(server, n=4).chat.completions.create(**ask)
    chosen = completion.choices[0].message.tool_calls[0].function
    assert (chosen.name, json.loads(chosen.arguments)) == ("get_weather", {"city": "Paris"})
    ranking = rerank.explain(completion)
    assert [check.validator for check in ranking.best.checks] == ["tools"]
    assert [c.passed for c in ranking] == [True, False, False, False]
    response = wrapped(server, n=4).responses.create(
        model="m", input="Weather in Paris?",
        tools=[{"type": "function", **WEATHER["function"]}],
    )
    assert [(o.name, json.loads(o.arguments)) for o in response.output] == [("get_weather", {"city": "Paris"})]


def test_json_schema_request_picks_a_valid_candidate(start_server):
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
              "additionalProperties": False}
    candidates = ['{"city": 1}', '{"town": "Paris"}', '{"city": "Paris"}', '{"town": "Paris"}']
    server = start_server(candidates=candidates)
    text_format = {"format": {"type": "json_schema", "name": "city", "schema": schema, "strict": True}}
    response = wrapped(server, n=4).responses.create(model="m", input=QUESTION, text=text_format)
    jsonschema.validate(json.loads(response.output_text), schema)
    ranking = rerank.explain(response)
    assert [check.validator for check in ranking.best.checks] == ["json-schema"]
    assert [c.passed for c in ranking] == [True, False, False, False]


# --- the benchmark pools: the wrapped client picks what the core picks -----------------------


@pytest.mark.slow
def test_bfcl_pools_wrapped_pick_matches_reranker_rank(start_server, bench_dir):
    pools = read_pools("bfcl", limit=60)
    first_of_query = {}
    for pool in pools:
        first_of_query.setdefault(pool["query"].strip(), pool)
    chosen = [p for p in first_of_query.values() if len(p["candidates"]) == 8][:3]
    server = start_server(candidates=None, pools=bench_dir / "bfcl-dev.jsonl")
    client = wrapped(server, n=8)
    for pool in chosen:
        completion = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": pool["query"]}], tools=pool["tools"])
        expected = expected_best(pool["candidates"], query=pool["query"], tools=tuple(pool["tools"]))
        assert without_ids(served(completion.choices[0].message)) == without_ids(expected), pool["id"]


# --- the generation core on its own ---------------------------------------------------------


def test_planner_shares_out_n_and_recovers_from_a_rejected_n():
    planner = Planner({"model": "m", "messages": MESSAGES, "n": 9}, kind="chat", n=5, models=["a", "b"])
    jobs = planner.start()
    assert [(j.model, j.want, j.body.get("n")) for j in jobs] == [("a", 3, 3), ("b", 2, 2)]
    rejected = SendError("bad", status=400, body={"error": {"message": "n must be 1", "param": None}})
    follow_ups = planner.done(jobs[0], rejected)
    assert [(j.model, j.want, "n" in j.body) for j in follow_ups] == [("a", 1, False)] * 3
    one_choice = {"choices": [{"message": {"content": "x"}}], "usage": {"total_tokens": 2}}
    assert [j.want for j in planner.done(jobs[1], one_choice)] == [1]
    assert planner.generation.usage == {"total_tokens": 2} and len(planner.generation.candidates) == 1


def test_rejects_n_and_add_usage():
    assert rejects_n(SendError("x", status=400, body={"error": {"param": "n", "message": "?"}}))
    assert rejects_n(SendError("x", status=422, body="Unsupported value: 'n'"))
    assert not rejects_n(SendError("x", status=500, body={"error": {"param": "n"}}))
    assert not rejects_n(SendError("x", status=400, body={"error": {"message": "bad messages"}}))
    total = add_usage({"a": 1, "d": {"x": 2}}, {"a": 2, "d": {"x": 1, "y": 3}, "b": None})
    assert total == {"a": 3, "d": {"x": 3, "y": 3}, "b": None}


def test_wrap_refuses_what_it_cannot_wrap(start_server):
    with pytest.raises(rerank.ConfigError, match="openai.OpenAI"):
        rerank.wrap(object())
    server = start_server()
    client = OpenAI(base_url=server.base_url, api_key="test", max_retries=0)
    with pytest.raises(rerank.ConfigError, match="n must be"):
        rerank.wrap(client, n=0)
    with pytest.raises(rerank.ConfigError):
        rerank.wrap(client, reranker=rerank.Reranker(), strict=True)
    twice = rerank.wrap(rerank.wrap(client, n=3), n=2)
    twice.chat.completions.create(model="m", messages=MESSAGES)
    assert [b.get("n") for b in generation_bodies(server)] == [2]
    with pytest.raises(rerank.InputError, match="rerank.wrap"):
        rerank.explain(client.chat.completions.create(model="m", messages=MESSAGES))
