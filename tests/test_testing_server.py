"""rerank.testing: the OpenAI-compatible test server, driven by the real openai SDK over HTTP."""

from __future__ import annotations

import json
import subprocess
import sys

import openai
import pytest
from openai import OpenAI

from conftest import read_pools
from conftest_server import ANSWERS, MESSAGES, QUESTION, generation_bodies, start_server  # noqa: F401
from rerank.errors import ConfigError
from rerank.testing import Fault
from rerank.text import words


def client_for(server, **options) -> OpenAI:
    return OpenAI(base_url=server.base_url, api_key="test", max_retries=0, **options)


def test_chat_honours_n_and_cycles_through_the_candidates(start_server):
    server = start_server()
    client = client_for(server)
    first = client.chat.completions.create(model="m", messages=MESSAGES, n=3)
    second = client.chat.completions.create(model="m", messages=MESSAGES, n=2)
    served = [c.message.content for c in first.choices + second.choices]
    assert served == ANSWERS + ANSWERS[:1]
    assert [c.index for c in first.choices] == [0, 1, 2]
    completion_tokens = sum(len(words(a)) for a in ANSWERS[:3])
    assert first.usage.completion_tokens == completion_tokens
    assert first.usage.total_tokens == first.usage.prompt_tokens + completion_tokens > completion_tokens


def test_chat_ignores_or_caps_n(start_server):
    ignoring = client_for(start_server(n_mode="ignore"))
    assert len(ignoring.chat.completions.create(model="m", messages=MESSAGES, n=4).choices) == 1
    capped = client_for(start_server(max_n=2))
    assert len(capped.chat.completions.create(model="m", messages=MESSAGES, n=4).choices) == 2


def test_chat_rejects_n_like_openai_does(start_server):
    client = client_for(start_server(n_mode="reject"))
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="m", messages=MESSAGES, n=2)
    assert caught.value.param == "n"
    assert client.chat.completions.create(model="m", messages=MESSAGES).choices[0].message.content == ANSWERS[0]


def test_tool_call_candidates_come_back_as_tool_calls(start_server):
    call = {"type": "function", "function": {"name": "capital_of", "arguments": '{"country": "France"}'}}
    server = start_server(candidates=[{"content": None, "tool_calls": [call]}])
    completion = client_for(server).chat.completions.create(model="m", messages=MESSAGES)
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls[0].function.name == "capital_of"
    assert json.loads(choice.message.tool_calls[0].function.arguments) == {"country": "France"}
    response = client_for(server).responses.create(model="m", input=QUESTION)
    assert [(o.type, o.name) for o in response.output] == [("function_call", "capital_of")]


def test_responses_api_answers_one_candidate_per_request(start_server):
    server = start_server()
    client = client_for(server)
    outputs = [client.responses.create(model="m", input=QUESTION).output_text for _ in range(2)]
    assert outputs == ANSWERS[:2]
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model="m", input=QUESTION, extra_body={"n": 2})


def test_streams_replay_the_answer_in_the_apis_own_events(start_server):
    server = start_server()
    client = client_for(server)
    with client.chat.completions.stream(model="m", messages=MESSAGES, stream_options={"include_usage": True}) as s:
        chunks = [event for event in s if event.type == "chunk"]
        final = s.get_final_completion()
    assert final.choices[0].message.content == ANSWERS[0]
    assert chunks[-1].chunk.usage.completion_tokens == len(words(ANSWERS[0]))
    with client.responses.stream(model="m", input=QUESTION) as s:
        deltas = [e.delta for e in s if e.type == "response.output_text.delta"]
        response = s.get_final_response()
    assert "".join(deltas) == response.output_text == ANSWERS[1]
    assert len(deltas) > 1


def test_pools_pick_candidates_by_the_last_user_message(start_server, bench_dir):
    pools = read_pools("bfcl", limit=40)
    pool = next(p for p in pools[1:] if p["query"] != pools[0]["query"])
    server = start_server(candidates=None, pools=bench_dir / "bfcl-dev.jsonl")
    messages = [{"role": "user", "content": "an earlier turn"}, {"role": "user", "content": pool["query"]}]
    completion = client_for(server).chat.completions.create(model="m", messages=messages, n=len(pool["candidates"]))
    served = [(c.message.content, [t.function.arguments for t in c.message.tool_calls or ()]) for c in completion.choices]
    expected = [(c["content"], [t["function"]["arguments"] for t in c.get("tool_calls") or ()])
                for c in pool["candidates"]]
    assert served == expected
    with pytest.raises(openai.BadRequestError, match="no pool"):
        client_for(server).chat.completions.create(model="m", messages=[{"role": "user", "content": "unknown"}])


def test_faults_by_request_number_kind_and_fraction(start_server):
    server = start_server(faults=[Fault(status=429, requests={1}), Fault(kind="bad-body", requests={2})])
    client = client_for(server)
    client.chat.completions.create(model="m", messages=MESSAGES)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="m", messages=MESSAGES)
    raw = client.chat.completions.with_raw_response.create(model="m", messages=MESSAGES)
    with pytest.raises(ValueError):
        json.loads(raw.http_response.content)
    assert len(generation_bodies(server)) == 3

    half = Fault(status=500, fraction=0.5, seed=7)
    hits = [half.applies(number, {}) for number in range(200)]
    assert hits == [half.applies(number, {}) for number in range(200)]
    assert 60 < sum(hits) < 140
    picky = Fault(status=500, when=lambda body: body.get("model") == "bad")
    assert picky.applies(0, {"model": "bad"}) and not picky.applies(0, {"model": "good"})


def test_server_records_requests_and_lists_models(start_server):
    server = start_server(model="served-model")
    client = client_for(server)
    assert [m.id for m in client.models.list()] == ["served-model"]
    client.chat.completions.create(model="x", messages=MESSAGES, extra_headers={"x-test": "1"})
    recorded = server.requests[-1]
    assert recorded.path == "/v1/chat/completions"
    assert recorded.body["messages"] == MESSAGES
    assert recorded.headers.get("x-test") == "1"


def test_bad_options_are_refused():
    from rerank.testing import serve

    with pytest.raises(ConfigError, match="n_mode"):
        serve(candidates=["a"], n_mode="sometimes")
    with pytest.raises(ConfigError, match="candidates"):
        serve()
    with pytest.raises(ConfigError, match="status"):
        Fault(status=200)


def test_command_line_entry_serves_a_pools_file(tmp_path):
    pools = tmp_path / "pools.jsonl"
    pools.write_text(json.dumps({"query": QUESTION, "candidates": ANSWERS, "label": 1}) + "\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "rerank.testing", "--pools", str(pools), "--n-mode", "ignore"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("serving on http://127.0.0.1:"), process.stderr.read() if not line else line
        base_url = line.split()[2]
        client = OpenAI(base_url=base_url, api_key="test", max_retries=0)
        completion = client.chat.completions.create(model="m", messages=MESSAGES, n=3)
        assert [c.message.content for c in completion.choices] == ANSWERS[:1]
    finally:
        process.terminate()
        process.wait(timeout=10)
