"""Adaptive N, first-valid and the cost ledger: the real openai SDK against rerank.testing over HTTP."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import pytest
from openai import AsyncOpenAI, OpenAI

import rerank
from conftest_server import ANSWERS, MESSAGES, QUESTION, generation_bodies, start_server  # noqa: F401
from rerank.agreement import CONFIDENCE, beta_above_half, final_answer
from rerank.testing import Fault
from rerank.wire import add_usage, split_usage

AGREEING = ["Paris.", "paris", "Lyon.", "Marseille.", "Nice.", "Lille.", "Nantes.", "Brest."]
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
                   "required": ["city"]}}}
JSON_ASKED = {"response_format": {"type": "json_object"}}


def wrapped(server, **options: Any) -> OpenAI:
    return rerank.wrap(OpenAI(base_url=server.base_url, api_key="test", max_retries=0), **options)


def awrapped(server, **options: Any) -> AsyncOpenAI:
    return rerank.wrap(AsyncOpenAI(base_url=server.base_url, api_key="test", max_retries=0), **options)


def call(number: int, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"id": f"call_{number}", "type": "function",
            "function": {"name": name, "arguments": json.dumps(arguments)}}


# --- adaptive N -----------------------------------------------------------------------------


def test_two_agreeing_candidates_cost_two_requests_not_n(start_server):
    server = start_server(candidates=AGREEING)
    completion = wrapped(server, n="auto", native_n=False).chat.completions.create(model="m", messages=MESSAGES)
    assert server.generation_requests == 2
    assert completion.choices[0].message.content in ("Paris.", "paris")
    ledger = rerank.explain(completion).generation
    assert ledger["rounds"] == [{"asked": 2, "received": 2}]
    assert ledger["stop"] == "agreed: 2 of 2 candidates passing every gate, same final answer"


def test_with_native_n_the_first_round_is_one_request_for_min_n(start_server):
    server = start_server(candidates=AGREEING)
    wrapped(server, n="auto", min_n=2).chat.completions.create(model="m", messages=MESSAGES)
    assert [body.get("n") for body in generation_bodies(server)] == [2]


def test_disagreeing_candidates_are_topped_up_to_max_n(start_server):
    server = start_server(candidates=ANSWERS)
    completion = wrapped(server, n="auto", max_n=6, native_n=False).chat.completions.create(
        model="m", messages=MESSAGES)
    assert server.generation_requests == 6
    ranking = rerank.explain(completion)
    assert len(ranking) == 6
    assert ranking.generation["rounds"] == [{"asked": 2, "received": 2}, {"asked": 4, "received": 4}]
    assert ranking.generation["stop"] == "max_n: 6 candidates"
    assert all(c.usage for c in ranking)


def test_doubling_tops_up_round_by_round(start_server):
    server = start_server(candidates=ANSWERS, n_mode="ignore")
    completion = wrapped(server, n="auto", max_n=8, top_up="double").chat.completions.create(
        model="m", messages=MESSAGES)
    rounds = rerank.explain(completion).generation["rounds"]
    assert [r["asked"] for r in rounds] == [2, 2, 4]
    assert server.generation_requests == 8


def test_agreeing_tool_calls_stop_after_the_first_round(start_server):
    same = [{"content": None, "tool_calls": [call(0, "get_weather", {"city": "Paris", "unit": "c"})]},
            {"content": None, "tool_calls": [call(1, "get_weather", {"unit": "c", "city": "Paris"})]},
            {"content": None, "tool_calls": [call(2, "get_weather", {"city": "Rome"})]}]
    server = start_server(candidates=same)
    completion = wrapped(server, n="auto", native_n=False).chat.completions.create(
        model="m", messages=[{"role": "user", "content": "Weather in Paris, celsius?"}], tools=[WEATHER_TOOL])
    assert server.generation_requests == 2
    assert rerank.explain(completion).generation["stop"].endswith("same tool calls")
    assert json.loads(completion.choices[0].message.tool_calls[0].function.arguments)["city"] == "Paris"


def test_agreeing_candidates_that_fail_a_gate_are_topped_up(start_server):
    server = start_server(candidates=["Paris.", "Paris.", "Paris.", '{"city": "Paris"}'])
    completion = wrapped(server, n="auto", max_n=4, native_n=False).chat.completions.create(
        model="m", messages=MESSAGES, **JSON_ASKED)
    assert server.generation_requests == 4
    assert completion.choices[0].message.content == '{"city": "Paris"}'
    assert rerank.explain(completion).generation["stop"] == "max_n: 4 candidates"


def test_the_deadline_stops_top_ups(start_server):
    server = start_server(candidates=ANSWERS)
    # A deadline no HTTP round trip can meet: the first candidate is still awaited, nothing more.
    completion = wrapped(server, n="auto", native_n=False, deadline=1e-6).chat.completions.create(
        model="m", messages=MESSAGES)
    ledger = rerank.explain(completion).generation
    assert ledger["stop"].startswith("deadline") and [r["asked"] for r in ledger["rounds"]] == [2]
    # The call returns once the first candidate is in; the second request may still be on its way.
    give_up = time.monotonic() + 30
    while server.generation_requests < 2 and time.monotonic() < give_up:
        time.sleep(0.05)
    assert server.generation_requests == 2


def test_the_token_budget_stops_top_ups(start_server):
    server = start_server(candidates=ANSWERS)
    completion = wrapped(server, n="auto", native_n=False, max_tokens_total=1).chat.completions.create(
        model="m", messages=MESSAGES)
    assert server.generation_requests == 2
    ledger = rerank.explain(completion).generation
    assert ledger["stop"].startswith(f"budget: {completion.usage.total_tokens} of max_tokens_total 1 spent")


def test_per_call_overrides_turn_adaptive_on_and_off(start_server):
    server = start_server(candidates=["Paris."])
    client = wrapped(server, n=4, native_n=False)
    client.chat.completions.create(model="m", messages=MESSAGES, extra_body={"rerank": {"n": "auto", "max_n": 3}})
    assert server.generation_requests == 2
    client.chat.completions.create(model="m", messages=MESSAGES, extra_headers={"x-rerank-n": "auto"})
    assert server.generation_requests == 4
    client.chat.completions.create(model="m", messages=MESSAGES)
    assert server.generation_requests == 8
    auto = wrapped(server, n="auto", native_n=False)
    auto.chat.completions.create(model="m", messages=MESSAGES, extra_body={"rerank": {"n": 3}})
    assert server.generation_requests == 11


def test_async_adaptive_stops_on_agreement(start_server):
    server = start_server(candidates=AGREEING)

    async def ask() -> Any:
        return await awrapped(server, n="auto", native_n=False).chat.completions.create(model="m", messages=MESSAGES)

    completion = asyncio.run(ask())
    assert server.generation_requests == 2
    assert rerank.explain(completion).generation["stop"].startswith("agreed")


def test_step_top_ups_buy_one_candidate_a_round_until_a_majority_agrees(start_server):
    # Paris, Lyon disagree; the third (paris) makes 2 of 3 agree: stop there, not at max_n.
    server = start_server(candidates=["Paris.", "Lyon.", "paris", "Nice.", "Lille.", "Brest.", "Nantes.", "Metz."])
    completion = wrapped(server, n="auto", max_n=8, top_up="step", native_n=False).chat.completions.create(
        model="m", messages=MESSAGES)
    assert server.generation_requests == 3
    generation = rerank.explain(completion).generation
    assert generation["rounds"] == [{"asked": 2, "received": 2}, {"asked": 1, "received": 1}]
    assert generation["stop"] == "agreed: 2 of 3 candidates passing every gate, same final answer"
    assert completion.choices[0].message.content in ("Paris.", "paris")


def test_the_confident_rule_steps_on_until_the_leading_answer_is_likely_enough(start_server):
    # Unanimous answers: confidence 7/8 at two, 15/16 at three, 31/32 at four (>= 0.95): four requests.
    server = start_server(candidates=["Paris.", "paris", "Paris", "PARIS", "Lyon.", "Nice.", "Lille.", "Brest."])
    completion = wrapped(server, n="auto", max_n=8, top_up="step", settle="confident",
                         native_n=False).chat.completions.create(model="m", messages=MESSAGES)
    assert server.generation_requests == 4
    generation = rerank.explain(completion).generation
    assert [r["asked"] for r in generation["rounds"]] == [2, 1, 1]
    assert generation["stop"] == ("agreed: 4 of 4 candidates passing every gate, same final answer; "
                                  "confidence 0.969 (next largest group 0)")


def test_the_confident_rule_counts_the_runner_up_and_stops_at_max_n_without_a_clear_leader(start_server):
    # Two answers split evenly never reach the bar: every round is bought, one at a time.
    server = start_server(candidates=["Paris.", "Lyon.", "paris", "lyon", "Paris", "Lyon"])
    completion = wrapped(server, n="auto", max_n=6, top_up="step", settle="confident",
                         native_n=False).chat.completions.create(model="m", messages=MESSAGES)
    assert server.generation_requests == 6
    generation = rerank.explain(completion).generation
    assert [r["asked"] for r in generation["rounds"]] == [2, 1, 1, 1, 1]
    assert generation["stop"] == "max_n: 6 candidates"


def test_the_async_client_steps_and_settles_the_same_way(start_server):
    server = start_server(candidates=["Paris.", "paris", "Paris", "PARIS", "Lyon.", "Nice.", "Lille.", "Brest."])

    async def ask() -> Any:
        client = awrapped(server, n="auto", top_up="step", settle="confident", native_n=False)
        return await client.chat.completions.create(model="m", messages=MESSAGES)

    completion = asyncio.run(ask())
    assert server.generation_requests == 4
    assert [r["asked"] for r in rerank.explain(completion).generation["rounds"]] == [2, 1, 1]


def test_a_per_call_settle_rule_and_step_top_up_override_the_wrap_defaults(start_server):
    server = start_server(candidates=["Paris.", "paris", "Paris", "PARIS", "Lyon.", "Nice.", "Lille.", "Brest."])
    client = wrapped(server, n="auto", native_n=False)  # majority, round: would stop at two
    completion = client.chat.completions.create(
        model="m", messages=MESSAGES, extra_body={"rerank": {"settle": "confident", "top_up": "step"}})
    assert server.generation_requests == 4
    assert rerank.explain(completion).generation["stop"].startswith("agreed: 4 of 4")


def test_headers_carry_every_adaptive_option(start_server):
    server = start_server(candidates=["Paris.", "paris", "Paris", "PARIS", "Lyon.", "Nice.", "Lille.", "Brest."])
    client = wrapped(server, native_n=False)
    completion = client.chat.completions.create(model="m", messages=MESSAGES, extra_headers={
        "x-rerank-n": "auto", "x-rerank-min-n": "3", "x-rerank-max-n": "6",
        "x-rerank-settle": "confident", "x-rerank-top-up": "step"})
    assert server.generation_requests == 4  # 3, then one at a time: 4 of 4 agree with confidence 0.969
    generation = rerank.explain(completion).generation
    assert generation["rounds"] == [{"asked": 3, "received": 3}, {"asked": 1, "received": 1}]
    assert generation["stop"].startswith("agreed: 4 of 4")
    assert not any(k.startswith("x-rerank-") for r in server.requests for k in r.headers)
    with pytest.raises(rerank.ConfigError, match="settle"):
        client.chat.completions.create(model="m", messages=MESSAGES, extra_headers={"x-rerank-settle": "maybe"})
    assert server.generation_requests == 4


def test_beta_confidence_is_the_exact_probability_the_leader_is_the_likelier_answer():
    assert beta_above_half(2, 0) == 7 / 8
    assert beta_above_half(4, 0) == 31 / 32
    assert beta_above_half(3, 3) == 1 / 2
    for lead in range(8):
        for runner_up in range(8):
            assert beta_above_half(lead, runner_up) + beta_above_half(runner_up, lead) == pytest.approx(1.0)
    # the bar: four unanimous answers, or six against one, settle; three unanimous or five against one do not
    assert beta_above_half(4, 0) >= CONFIDENCE > beta_above_half(3, 0)
    assert beta_above_half(6, 1) >= CONFIDENCE > beta_above_half(5, 1)


# --- options are checked once, before anything is sent ---------------------------------------


@pytest.mark.parametrize("override", [
    {"weights": {"nope": 1}}, {"n": "many"}, {"min_n": 5, "max_n": 3, "n": "auto"}, {"strategy": "fastest"},
    {"max_tokens_total": 0}, {"top_up": "triple"}, {"settle": "maybe"},
])
def test_a_bad_per_call_option_raises_before_any_request(start_server, override):
    server = start_server()
    client = wrapped(server, n=4)
    with pytest.raises(rerank.ConfigError):
        client.chat.completions.create(model="m", messages=MESSAGES, extra_body={"rerank": override})
    assert server.generation_requests == 0


def test_bad_wrap_options_are_refused(start_server):
    server = start_server()
    for options in ({"n": "auto", "min_n": 9, "max_n": 8}, {"n": "auto", "strategy": "first-valid"},
                    {"strategy": "quick"}, {"max_tokens_total": -5}, {"n": "some"}):
        with pytest.raises(rerank.ConfigError):
            wrapped(server, **options)


# --- first-valid ------------------------------------------------------------------------------


def test_first_valid_streams_the_first_passing_candidate_before_the_held_ones_answer(start_server):
    release = threading.Event()
    server = start_server(candidates=["not JSON at all", '{"city": "Paris"}', '{"city": "Lyon"}', '{"city": "Nice"}'],
                          faults=Fault("hold", requests={2, 3}, release=release))
    try:
        client = wrapped(server, n=4, native_n=False, strategy="first-valid")
        stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True, **JSON_ASKED)
        chunks = list(stream)
        assert server.answered <= 2  # the two held candidates have not been answered yet
    finally:
        release.set()
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == '{"city": "Paris"}'
    give_up = time.monotonic() + 30  # the stream may end before the last request has even arrived: wait for it
    while server.generation_requests < 4 and time.monotonic() < give_up:
        time.sleep(0.05)
    assert server.generation_requests == 4


def test_async_first_valid_cancels_the_rest(start_server):
    release = threading.Event()
    server = start_server(candidates=['{"city": "Paris"}', "no", "no", "no"],
                          faults=Fault("hold", requests={1, 2, 3}, release=release))

    async def ask() -> Any:
        client = awrapped(server, n=4, native_n=False, strategy="first-valid")
        completion = await client.chat.completions.create(model="m", messages=MESSAGES, **JSON_ASKED)
        return completion, server.answered

    try:
        completion, answered = asyncio.run(ask())
    finally:
        release.set()
    assert answered == 1
    assert completion.choices[0].message.content == '{"city": "Paris"}'
    ranking = rerank.explain(completion)
    assert len(ranking) == 1 and ranking.failures == ()
    assert ranking.generation["stop"] == "first-valid: candidate 0 of 1 received passes every gate"


# --- the ledger -------------------------------------------------------------------------------


@pytest.mark.parametrize("options", [{"n": 4}, {"n": 3, "native_n": False}, {"n": "auto", "max_n": 5}])
def test_each_candidates_usage_adds_up_to_the_responses(start_server, options):
    server = start_server(candidates=ANSWERS)
    completion = wrapped(server, **options).chat.completions.create(model="m", messages=MESSAGES)
    ranking = rerank.explain(completion)
    total = None
    for candidate in ranking:
        assert candidate.usage["completion_tokens"] >= 0
        total = add_usage(total, candidate.usage)
    assert total == completion.usage.model_dump(exclude_none=True)
    assert ranking.generation["tokens"] == completion.usage.total_tokens
    assert ranking.generation["candidates"] == len(ranking)


def test_responses_api_usage_is_per_candidate_too(start_server):
    server = start_server(candidates=ANSWERS)
    response = wrapped(server, n=3).responses.create(model="m", input=QUESTION)
    ranking = rerank.explain(response)
    total = None
    for candidate in ranking:
        total = add_usage(total, candidate.usage)
    assert total["output_tokens"] == response.usage.output_tokens
    assert total["total_tokens"] == response.usage.total_tokens
    assert total["output_tokens_details"]["reasoning_tokens"] == 0


def test_split_usage_keeps_whole_tokens_and_totals():
    shares = split_usage({"prompt_tokens": 7, "completion_tokens": 10, "total_tokens": 17,
                          "completion_tokens_details": {"reasoning_tokens": 3}}, 3)
    assert [s["prompt_tokens"] for s in shares] == [2, 2, 3]
    assert all(s["total_tokens"] == s["prompt_tokens"] + s["completion_tokens"] for s in shares)
    total = None
    for share in shares:
        total = add_usage(total, share)
    assert total == {"prompt_tokens": 7, "completion_tokens": 10, "total_tokens": 17,
                     "completion_tokens_details": {"reasoning_tokens": 3}}


@pytest.mark.parametrize("text, answer", [
    ("42", "42"), ("Paris.", "paris"), ("After some thought, the answer is (B).", "b"),
    ("Adding them up we get \\boxed{1,024} in total, as shown above.", "1024"),
    ("This is a long open answer with no single final value in it at all.", None),
])
def test_final_answer(text, answer):
    assert final_answer(text) == answer


# --- rerank generate -n auto ------------------------------------------------------------------


def test_rerank_generate_auto_writes_each_lines_cost_and_a_summary(start_server, tmp_path):
    from click.testing import CliRunner

    from rerank.cli import main

    server = start_server(candidates=["Paris."])
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions",
                                          "body": {"model": "m", "messages": MESSAGES}}) + "\n" for i in range(3)))
    output = tmp_path / "out.jsonl"
    result = CliRunner().invoke(main, ["generate", str(source), "-o", str(output), "--base-url", server.base_url,
                                       "--api-key", "test", "-n", "auto", "--max-n", "6"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in output.read_text().splitlines()]
    assert [line["cost"]["received"] for line in lines] == [2, 2, 2]
    assert all(line["cost"]["tokens"] == line["response"]["body"]["usage"]["total_tokens"] for line in lines)
    tokens = sum(line["cost"]["tokens"] for line in lines)
    assert f"3 lines answered; candidates requested 6, received 6; tokens {tokens:,}" in result.stderr
    assert server.generation_requests == 3  # native n: one request for the two candidates of each line
    bad = CliRunner().invoke(main, ["generate", str(source), "-o", str(tmp_path / "x.jsonl"), "-n", "lots",
                                    "--base-url", server.base_url])
    assert bad.exit_code == 2 and "neither a whole number nor 'auto'" in bad.output


def test_rerank_generate_takes_the_settle_rule_and_step_top_ups(start_server, tmp_path):
    from click.testing import CliRunner

    from rerank.cli import main

    server = start_server(candidates=["Paris.", "paris", "Paris", "PARIS", "Lyon.", "Nice.", "Lille.", "Brest."])
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"custom_id": "r0", "method": "POST", "url": "/v1/chat/completions",
                                  "body": {"model": "m", "messages": MESSAGES}}) + "\n")
    output = tmp_path / "out.jsonl"
    result = CliRunner().invoke(main, ["generate", str(source), "-o", str(output), "--base-url", server.base_url,
                                       "--api-key", "test", "-n", "auto", "--top-up", "step", "--settle", "confident"])
    assert result.exit_code == 0, result.output
    (line,) = [json.loads(line) for line in output.read_text().splitlines()]
    generation = line["response"]["body"]["rerank"]["generation"]
    assert [r["asked"] for r in generation["rounds"]] == [2, 1, 1]
    assert generation["stop"].startswith("agreed: 4 of 4") and line["cost"]["received"] == 4


def test_a_top_up_asks_for_no_more_than_the_budget_left_pays_for():
    from rerank.adaptive import Fanning, Rounds
    from rerank.agreement import Agreement
    from rerank.generate import Generated, Generation

    never = lambda candidates: Agreement("same final answer", (0,), len(candidates))  # noqa: E731
    generation = Generation(usage={"total_tokens": 100})
    generation.candidates = [Generated({"content": "a"}, {}), Generated({"content": "b"}, {})]
    rounds = Rounds(Fanning(n=8, adaptive=True, max_n=8, max_tokens_total=250), never)
    assert rounds.next(generation, 2) == 3  # 150 tokens left at 50 a candidate
    generation.candidates += [Generated({"content": c}, {}) for c in "cde"]
    generation.usage = {"total_tokens": 260}
    assert rounds.next(generation, 3) == 0
    assert generation.stop == ("budget: 260 of max_tokens_total 250 spent "
                               "(no agreement: 1 of 5 candidates passing every gate, same final answer)")
    assert generation.rounds == [{"asked": 2, "received": 2}, {"asked": 3, "received": 3}]


def test_an_upstream_reporting_more_tokens_than_a_float_holds_stops_the_top_ups(start_server):
    # A hostile upstream's usage: 10**400 tokens (valid JSON; float division of it overflows).
    huge = 10**400
    body = {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "I would rather talk about the weather."}}],
            "usage": {"prompt_tokens": huge, "completion_tokens": 1, "total_tokens": huge + 1}}
    server = start_server(candidates=ANSWERS, faults=[Fault(kind="body", body=json.dumps(body).encode(), requests={0})])
    completion = wrapped(server, n="auto", native_n=False, max_tokens_total=1000).chat.completions.create(
        model="m", messages=MESSAGES)
    stop = rerank.explain(completion).generation["stop"]
    assert stop.startswith("budget: ") and int(stop.split()[1]) > huge, stop
    assert server.generation_requests == 2

