"""`rerank serve`: real clients (openai SDK, Node SDK, curl, raw sockets) over real HTTP to the proxy,
run by uvicorn on 127.0.0.1 in a thread, with rerank.testing as the upstream."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import httpx2
import jsonschema
import openai
import pytest
from openai import OpenAI

import rerank
from conftest_server import ANSWERS, MESSAGES, QUESTION
from rerank.serve import Background, ServeConfig
from rerank.testing import Fault, Server, serve

WEATHER_Q = "What is the weather in Paris?"
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                   "additionalProperties": False}}}]
WEATHER_ANSWERS = [
    {"content": None, "tool_calls": [{"function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
    {"content": None, "tool_calls": [{"function": {"name": "get_wether", "arguments": '{"city": "Paris"}'}}]},
    {"content": None, "tool_calls": [{"function": {"name": "get_weather", "arguments": '{"town": 3}'}}]},
    "I cannot check the weather.",
]
PERSON_Q = "Give the name and age of the first person to walk on the Moon as JSON."
SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
          "required": ["name", "age"], "additionalProperties": False}
PERSON_ANSWERS = ['{"name": "Neil Armstrong"}', '{"name": "Neil Armstrong", "age": 38}',
                  'Neil Armstrong, 38', '{"name": "Neil Armstrong", "age": "38"}']
RESPONSE_FORMAT = {"type": "json_schema", "json_schema": {"name": "person", "schema": SCHEMA, "strict": True}}


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    pools = tmp_path_factory.mktemp("pools") / "pools.jsonl"
    pools.write_text("\n".join(json.dumps({"query": q, "candidates": c}) for q, c in [
        (QUESTION, ANSWERS), (WEATHER_Q, WEATHER_ANSWERS), (PERSON_Q, PERSON_ANSWERS)]) + "\n")
    with serve(pools=pools, candidates=ANSWERS, n_mode="ignore") as server:
        yield server


@pytest.fixture(autouse=True)
def no_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "upstream" in request.fixturenames:
        server = request.getfixturevalue("upstream")
        server.faults, server.latency = (), 0.0


@pytest.fixture(scope="module")
def proxy(upstream: Server) -> Iterator[Background]:
    running = Background(ServeConfig(upstream=upstream.base_url, n=4))
    yield running
    running.close()


@pytest.fixture(scope="module")
def guarded(upstream: Server) -> Iterator[Background]:
    """A proxy holding one upstream key, with small limits."""
    running = Background(ServeConfig(upstream=upstream.base_url, n=2, upstream_api_key="sk-upstream",
                                  api_keys=("key-one", "key-two"), max_body_bytes=4096, max_n=3,
                                  request_timeout=1.5))
    yield running
    running.close()


def client(running: Background, key: str = "sk-caller", **options: Any) -> OpenAI:
    return OpenAI(base_url=running.base_url, api_key=key, max_retries=0, timeout=60, **options)


def wrapped_pick(upstream: Server, create: str = "chat", **request: Any) -> str | None:
    """What rerank.wrap picks for the same request and candidates: the proxy must agree."""
    wrapped = rerank.wrap(OpenAI(base_url=upstream.base_url, api_key="t", max_retries=0), n=4)
    if create == "chat":
        message = wrapped.chat.completions.create(model="m", **request).choices[0].message
        if message.tool_calls:
            return message.tool_calls[0].function.model_dump_json()
        return message.content
    return wrapped.responses.create(model="m", **request).output_text


def auth_of(recorded: Any) -> str | None:
    return {k.lower(): v for k, v in recorded.headers.items()}.get("authorization")


def last_messages(upstream: Server, count: int) -> list[Any]:
    return [r for r in upstream.requests if r.path.startswith("/v1/chat") or r.path.startswith("/v1/resp")][-count:]


# --- the Python SDK: chat and responses, streamed and not, tools, response_format ----------------


@pytest.mark.parametrize("stream", [False, True])
def test_chat_winner_equals_what_wrap_picks(proxy, upstream, stream):
    expected = wrapped_pick(upstream, messages=MESSAGES)
    sdk = client(proxy)
    if stream:
        chunks = list(sdk.chat.completions.create(model="m", messages=MESSAGES, stream=True,
                                                  stream_options={"include_usage": True}))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        ranking = rerank.explain(chunks[-1])
        assert chunks[-1].usage.total_tokens > 0
    else:
        raw = sdk.chat.completions.with_raw_response.create(model="m", messages=MESSAGES)
        completion = raw.parse()
        text, ranking = completion.choices[0].message.content, rerank.explain(completion)
        assert raw.headers["x-rerank-best-index"] == str(ranking.best_index)
        assert raw.headers["x-rerank-candidates"] == "4"
        sent = last_messages(upstream, 4)
        assert completion.usage.prompt_tokens > 0 and len(sent) == 4
    assert text == expected
    assert len(ranking) == 4 and ranking.failures == ()


@pytest.mark.parametrize("stream", [False, True])
def test_responses_winner_equals_what_wrap_picks(proxy, upstream, stream):
    expected = wrapped_pick(upstream, "responses", input=QUESTION)
    sdk = client(proxy)
    if stream:
        events = list(sdk.responses.create(model="m", input=QUESTION, stream=True))
        completed = [e for e in events if e.type == "response.completed"][0]
        text = completed.response.output_text
        ranking = rerank.explain(completed)
    else:
        response = sdk.responses.create(model="m", input=QUESTION)
        text, ranking = response.output_text, rerank.explain(response)
    assert text == expected
    assert len(ranking) == 4


@pytest.mark.parametrize("stream", [False, True])
def test_tools_winner_is_the_valid_call_wrap_picks(proxy, upstream, stream):
    messages = [{"role": "user", "content": WEATHER_Q}]
    expected = wrapped_pick(upstream, messages=messages, tools=TOOLS)
    sdk = client(proxy)
    if stream:
        chunks = list(sdk.chat.completions.create(model="m", messages=messages, tools=TOOLS, stream=True))
        calls = [c.choices[0].delta.tool_calls[0] for c in chunks if c.choices and c.choices[0].delta.tool_calls]
        name = calls[0].function.name
        arguments = "".join(c.function.arguments or "" for c in calls)
    else:
        call = sdk.chat.completions.create(model="m", messages=messages, tools=TOOLS).choices[0].message.tool_calls[0]
        name, arguments = call.function.name, call.function.arguments
    assert (name, json.loads(arguments)) == ("get_weather", {"city": "Paris"})
    assert expected is not None and json.loads(expected) == {"name": name, "arguments": arguments}


def test_response_format_winner_conforms_and_equals_wraps(proxy, upstream):
    messages = [{"role": "user", "content": PERSON_Q}]
    expected = wrapped_pick(upstream, messages=messages, response_format=RESPONSE_FORMAT)
    completion = client(proxy).chat.completions.create(model="m", messages=messages, response_format=RESPONSE_FORMAT)
    text = completion.choices[0].message.content
    jsonschema.validate(json.loads(text), SCHEMA)
    assert text == expected


def test_per_request_overrides_from_extra_body_and_headers(proxy, upstream):
    sdk = client(proxy)
    two = sdk.chat.completions.create(model="m", messages=MESSAGES, extra_body={"rerank": {"n": 2}})
    assert len(rerank.explain(two)) == 2
    three = sdk.chat.completions.with_raw_response.create(model="m", messages=MESSAGES,
                                                          extra_headers={"x-rerank-n": "3"})
    assert three.headers["x-rerank-candidates"] == "3"
    assert all("rerank" not in r.body and not any(h.lower().startswith("x-rerank") for h in r.headers)
               for r in last_messages(upstream, 5))
    with pytest.raises(openai.BadRequestError, match="weights"):
        sdk.chat.completions.create(model="m", messages=MESSAGES, extra_body={"rerank": {"weights": [1]}})


def test_other_routes_pass_through_and_the_callers_key_is_forwarded(proxy, upstream):
    models = client(proxy, key="sk-mine").models.list()
    assert [m.id for m in models.data] == ["rerank-testing"]
    assert upstream.requests[-1].path == "/v1/models"
    client(proxy, key="sk-mine").chat.completions.create(model="m", messages=MESSAGES)
    assert {auth_of(r) for r in last_messages(upstream, 4)} == {"Bearer sk-mine"}


def test_caller_keys_are_required_with_one_upstream_key(guarded, upstream):
    with pytest.raises(openai.AuthenticationError):
        client(guarded, key="key-three").chat.completions.create(model="m", messages=MESSAGES)
    completion = client(guarded, key="key-two").chat.completions.create(model="m", messages=MESSAGES)
    assert len(rerank.explain(completion)) == 2
    assert {auth_of(r) for r in last_messages(upstream, 2)} == {"Bearer sk-upstream"}


def test_limits_and_bad_requests_get_openai_shaped_errors(guarded, proxy):
    auth = {"authorization": "Bearer key-one"}
    big = {"model": "m", "messages": [{"role": "user", "content": "x" * 5000}]}
    cases = [
        (guarded, "POST", "/v1/chat/completions", json.dumps(big).encode(), auth, 413),
        (guarded, "POST", "/v1/chat/completions", json.dumps({"model": "m", "messages": MESSAGES,
                                                             "rerank": {"n": 5}}).encode(), auth, 400),
        (proxy, "POST", "/v1/chat/completions", b'{"model": "m", "messages": [', {}, 400),
        (proxy, "GET", "/v2/nothing", b"", {}, 404),
        (proxy, "POST", "/healthz", b"", {}, 405),
    ]
    for running, method, path, body, headers, status in cases:
        reply = httpx2.request(method, running.url + path, content=body, headers=headers, timeout=30)
        assert reply.status_code == status, (path, reply.text)
        detail = reply.json()["error"]
        assert set(detail) == {"message", "type", "param", "code"} and detail["message"]


def test_healthz_and_metrics(proxy):
    assert httpx2.get(f"{proxy.url}/healthz").json() == {"status": "ready"}
    client(proxy).chat.completions.create(model="m", messages=MESSAGES)
    text = httpx2.get(f"{proxy.url}/metrics").text
    assert 'rerank_requests_total{route="/v1/chat/completions",status="200"}' in text
    for name in ("rerank_candidates_total", "rerank_upstream_seconds_bucket", "rerank_scoring_seconds_count"):
        assert name in text


# --- faults ----------------------------------------------------------------------------------


def test_partial_failure_costs_only_the_failed_candidates(proxy, upstream):
    start = upstream.generation_requests
    upstream.faults = (Fault(status=500, requests={start + 1}),
                       Fault(kind="body", body=b'{"choices": []}', requests={start + 2}))
    completion = client(proxy).chat.completions.create(model="m", messages=MESSAGES)
    ranking = rerank.explain(completion)
    assert len(ranking) == 2 and len(ranking.failures) == 2


def test_all_failing_gives_the_upstreams_own_status_and_body(proxy, upstream):
    upstream.faults = (Fault(status=503),)
    with pytest.raises(openai.APIStatusError) as raised:
        client(proxy).chat.completions.create(model="m", messages=MESSAGES)
    assert raised.value.status_code == 503
    assert raised.value.body["message"].startswith("injected error 503")


def test_all_bad_bodies_give_a_502_in_the_apis_shape(proxy, upstream):
    upstream.faults = (Fault(kind="bad-body"),)
    with pytest.raises(openai.APIStatusError) as raised:
        client(proxy).chat.completions.create(model="m", messages=MESSAGES)
    assert raised.value.status_code == 502
    assert "not valid JSON" in raised.value.message


def test_a_slow_upstream_hits_the_deadline(guarded, upstream):
    upstream.faults = (Fault(kind="slow", seconds=4),)
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as raised:
        client(guarded, key="key-one").chat.completions.create(model="m", messages=MESSAGES)
    assert raised.value.status_code == 504
    assert time.monotonic() - started < 4


def _metric(running: Background, line_start: str) -> float:
    for line in httpx2.get(f"{running.url}/metrics").text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_client_disconnecting_mid_stream_or_mid_generation(proxy, upstream):
    body = json.dumps({"model": "m", "messages": MESSAGES, "stream": True}).encode()
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", proxy.port)) as sock:  # leaves after the first bytes
        sock.sendall(head + body)
        assert sock.recv(64).startswith(b"HTTP/1.1 200")
    upstream.latency = 1.0
    before = _metric(proxy, 'rerank_requests_total{route="/v1/chat/completions",status="499"}')
    with socket.create_connection(("127.0.0.1", proxy.port)) as sock:  # leaves while candidates are made
        sock.sendall(head + body)
        time.sleep(0.3)
    deadline = time.monotonic() + 10
    while _metric(proxy, 'rerank_requests_total{route="/v1/chat/completions",status="499"}') == before:
        assert time.monotonic() < deadline, "the proxy did not notice the client leaving"
        time.sleep(0.1)
    upstream.latency = 0.0
    assert len(rerank.explain(client(proxy).chat.completions.create(model="m", messages=MESSAGES))) == 4


# --- other clients: Node SDK and curl --------------------------------------------------------

NODE_SCRIPT = r"""
import OpenAI from "openai";
const client = new OpenAI({ baseURL: process.argv[2], apiKey: "sk-node", maxRetries: 0 });
const messages = [{ role: "user", content: process.argv[3] }];
const { data, response } = await client.chat.completions.create({ model: "m", messages }).withResponse();
const stream = await client.chat.completions.create({ model: "m", messages, stream: true });
let streamed = "";
for await (const chunk of stream) streamed += chunk.choices[0]?.delta?.content ?? "";
console.log(JSON.stringify({
  content: data.choices[0].message.content, streamed, best: response.headers.get("x-rerank-best-index"),
  candidates: response.headers.get("x-rerank-candidates"), ranked: data.rerank.candidates.length,
}));
"""


@pytest.fixture(scope="module")
def node_openai(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are not installed: the Node SDK test needs them")
    folder = tmp_path_factory.mktemp("node")
    subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent", "openai"], cwd=folder,
                   check=True, timeout=300, capture_output=True)
    (folder / "ask.mjs").write_text(NODE_SCRIPT)
    return folder


@pytest.mark.slow
def test_the_node_sdk_gets_the_reranked_answer(proxy, upstream, node_openai):
    expected = wrapped_pick(upstream, messages=MESSAGES)
    run = subprocess.run(["node", "ask.mjs", proxy.base_url, QUESTION], cwd=node_openai, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["content"] == expected and out["streamed"] == expected
    assert out["candidates"] == "4" and out["ranked"] == 4 and out["best"] in {"0", "1", "2", "3"}


def test_curl_gets_the_reranked_answer_with_its_headers(proxy, upstream):
    expected = wrapped_pick(upstream, messages=MESSAGES)
    body = json.dumps({"model": "m", "messages": MESSAGES})
    run = subprocess.run(["curl", "-sS", "-i", f"{proxy.base_url}/chat/completions", "-H",
                          "content-type: application/json", "-H", "authorization: Bearer sk-curl", "-d", body],
                         capture_output=True, timeout=60)
    assert run.returncode == 0, run.stderr
    head, _, payload = run.stdout.decode().partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 200")
    headers = dict(line.split(": ", 1) for line in head.split("\r\n")[1:])
    assert headers["x-rerank-candidates"] == "4" and headers["x-rerank-failures"] == "0"
    completion = json.loads(payload)
    assert completion["choices"][0]["message"]["content"] == expected
    assert int(headers["x-rerank-best-index"]) == completion["rerank"]["best_index"]


# --- load: 300 concurrent requests ------------------------------------------------------------


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


@pytest.fixture(scope="module")
def loaded(upstream: Server) -> Iterator[Background]:
    """A proxy whose idle upstream connections expire after 1 s, so its fds can settle in a test."""
    running = Background(ServeConfig(upstream=upstream.base_url, n=2, max_upstream=32, upstream_keepalive=1.0))
    yield running
    running.close()


@pytest.mark.slow
def test_300_concurrent_requests_each_answered_once(loaded, upstream):
    proxy = loaded
    upstream.faults = (Fault(status=500, fraction=0.1, seed=3), Fault(kind="bad-body", fraction=0.05, seed=4))

    async def burst(count: int) -> list[httpx2.Response]:
        limits = httpx2.Limits(max_connections=count, max_keepalive_connections=0)
        async with httpx2.AsyncClient(limits=limits, timeout=120) as http:
            async def one(i: int) -> httpx2.Response:
                body = {"model": "m", "messages": [{"role": "user", "content": f"Question number {i}?"}],
                        "rerank": {"n": 2}}
                return await http.post(f"{proxy.base_url}/chat/completions", json=body)
            return await asyncio.gather(*(one(i) for i in range(count)))

    def settled_fds() -> int:
        """Open fds once idle upstream connections expired and one request let the pool drop them."""
        time.sleep(1.5)
        asyncio.run(burst(1))
        return _open_fds()

    asyncio.run(burst(40))
    baseline = settled_fds()
    rss_before = _rss_mb()
    replies = asyncio.run(burst(300))
    ok = [r for r in replies if r.status_code == 200]
    errors = [r for r in replies if r.status_code != 200]
    assert len(replies) == 300
    assert all(set(r.json()["error"]) == {"message", "type", "param", "code"} for r in errors)
    assert all(r.status_code in (500, 502) for r in errors)
    ids = [r.json()["id"] for r in ok]
    assert len(set(ids)) == len(ids) and len(ok) > 200
    assert all(len(r.json()["rerank"]["candidates"]) + len(r.json()["rerank"]["failures"]) == 2 for r in ok)
    after = settled_fds()
    rss_after = _rss_mb()
    assert after <= baseline, f"{after} fds open after the burst, {baseline} before"
    assert rss_after < rss_before + 200, f"resident memory grew from {rss_before:.0f} to {rss_after:.0f} MB"
    print(f"load: {len(ok)} answered, {len(errors)} OpenAI-shaped errors "
          f"({sorted({r.status_code for r in errors})}), {len(set(ids))} distinct ids, fds {baseline} -> {after}, "
          f"RSS {rss_before:.0f} -> {rss_after:.0f} MB")


# --- the command: several workers, graceful shutdown ---------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_rerank_serve_command_with_workers_finishes_in_flight_requests_on_sigterm(upstream, tmp_path):
    port = _free_port()
    keys = tmp_path / "keys"
    keys.write_text("key-a\nkey-b\n")
    env = {**os.environ, "RERANK_UPSTREAM_API_KEY": "sk-upstream"}
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "rerank"), "serve",
         "--upstream", upstream.base_url, "--port", str(port), "--workers", "2", "-n", "3",
         "--api-key-file", str(keys), "--graceful-timeout", "20"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            try:
                if httpx2.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx2.HTTPError:
                pass
            assert time.monotonic() < deadline, "rerank serve did not get ready"
            time.sleep(0.3)
        upstream.latency = 2.0
        answers: list[Any] = []
        sdk = OpenAI(base_url=f"{base}/v1", api_key="key-b", max_retries=0, timeout=60)
        asking = threading.Thread(target=lambda: answers.append(
            sdk.chat.completions.create(model="m", messages=MESSAGES)))
        asking.start()
        time.sleep(1.0)
        process.terminate()  # SIGTERM while the request is in flight
        asking.join(60)
        assert process.wait(60) == 0
        assert len(answers) == 1 and len(rerank.explain(answers[0])) == 3
        log = process.stdout.read() if process.stdout else ""
        assert "POST /v1/chat/completions 200 n=3" in log
        assert "key-b" not in log and "sk-upstream" not in log and QUESTION not in log
    finally:
        upstream.latency = 0.0
        if process.poll() is None:
            process.kill()
            process.wait()


def test_langchain_chat_openai_through_the_proxy(proxy, upstream):
    from langchain_openai import ChatOpenAI

    expected = wrapped_pick(upstream, messages=MESSAGES)
    llm = ChatOpenAI(base_url=proxy.base_url, api_key="sk-lc", model="m", max_retries=0)
    message = llm.invoke(QUESTION)
    assert message.content == expected
    assert message.response_metadata["token_usage"]["total_tokens"] > 0
    assert "".join(str(chunk.content) for chunk in llm.stream(QUESTION)) == expected
