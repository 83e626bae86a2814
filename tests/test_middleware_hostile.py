"""rerank.wrap against a hostile upstream: one odd answer costs that candidate only; when every
answer is odd, the SDK's own exception. Real SDK, real HTTP, scripted bodies from rerank.testing."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai import OpenAI

import rerank
from conftest_server import ANSWERS, MESSAGES, start_server  # noqa: F401
from rerank.testing import Fault, Server, serve


def completion(content: Any, **extra: Any) -> dict[str, Any]:
    body = {"id": "chatcmpl-x", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
    body.update(extra)
    return body


def raw(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


HOSTILE = {
    "lone surrogate": raw(completion("Paris \ud800 is the capital.")),
    "5,000-digit usage number": raw(completion("Paris.")).replace(b'"prompt_tokens": 1', b'"prompt_tokens": ' + b"9" * 5000),
    "choices: []": raw(completion("x", choices=[])),
    "non-string content": raw(completion({"text": 5})),
    "content over 1M characters": raw(completion("Paris " * 200_001)),
    "choice without a message": raw(completion("x", choices=[{"index": 0}])),
    "tool_calls not a list": raw(completion("x", choices=[{"index": 0, "message": {"content": None, "tool_calls": "call"}}])),
    "a JSON array": b"[1, 2, 3]",
}


def wrapped(server: Server, **options: Any) -> OpenAI:
    client = OpenAI(base_url=server.base_url, api_key="test", max_retries=0, timeout=30)
    return rerank.wrap(client, native_n=False, **options)


@pytest.mark.parametrize("name", list(HOSTILE))
def test_one_hostile_answer_costs_that_candidate_only(start_server, name):
    server = start_server(n_mode="ignore", faults=Fault(kind="body", body=HOSTILE[name], requests={1}))
    response = wrapped(server, n=4).chat.completions.create(model="m", messages=MESSAGES)
    ranking = rerank.explain(response)
    assert response.choices[0].message.content in ANSWERS
    assert len(ranking) == 3
    assert len(ranking.failures) == 1, ranking.failures
    plain = OpenAI(base_url=server.base_url, api_key="test", max_retries=0)
    one = plain.chat.completions.create(model="m", messages=MESSAGES)
    # An unreadable answer's usage is left out (the 5,000-digit number never lands in the sum); a
    # readable one whose candidate is unusable was paid for, so its 1 token counts.
    assert response.usage.prompt_tokens in (3 * one.usage.prompt_tokens, 3 * one.usage.prompt_tokens + 1)


@pytest.mark.parametrize("name", list(HOSTILE))
def test_every_answer_hostile_raises_the_sdks_own_error(start_server, name):
    server = start_server(n_mode="ignore", faults=Fault(kind="body", body=HOSTILE[name]))
    with pytest.raises(openai.APIResponseValidationError) as raised:
        wrapped(server, n=3).chat.completions.create(model="m", messages=MESSAGES)
    assert raised.value.response.status_code == 200
    assert "rerank:" in raised.value.message


def test_hostile_answers_beside_an_error_status_raise_that_status(start_server):
    server = start_server(n_mode="ignore", faults=[Fault(kind="body", body=HOSTILE["choices: []"], requests={0, 1}),
                                                   Fault(status=502, requests={2})])
    with pytest.raises(openai.APIStatusError) as raised:
        wrapped(server, n=3).chat.completions.create(model="m", messages=MESSAGES)
    assert raised.value.status_code == 502
    assert "injected error 502" in raised.value.message


def test_hostile_answer_while_streaming_costs_that_candidate_only(start_server):
    server = start_server(n_mode="ignore", faults=Fault(kind="body", body=HOSTILE["lone surrogate"], requests={0}))
    stream = wrapped(server, n=2).chat.completions.create(model="m", messages=MESSAGES, stream=True)
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text in ANSWERS
    assert len(rerank.explain(chunks[-1]).failures) == 1


# --- a bounded property: whatever the upstream says, the SDK gets a completion or its own error -----

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
_fields = st.sampled_from(["choices", "usage", "id", "model", "object", "created"])
_choice_fields = st.sampled_from(["message", "index", "finish_reason", "logprobs"])
_message_fields = st.sampled_from(["content", "tool_calls", "role", "refusal"])


@st.composite
def hostile_bodies(draw: st.DrawFn) -> bytes:
    """A chat completion with one part replaced by arbitrary JSON, or arbitrary bytes/JSON."""
    kind = draw(st.sampled_from(["field", "choice", "message", "json", "bytes", "text"]))
    body = completion(draw(st.text(max_size=40)))
    if kind == "field":
        body[draw(_fields)] = draw(_json)
    elif kind == "choice":
        body["choices"][0][draw(_choice_fields)] = draw(_json)
    elif kind == "message":
        body["choices"][0]["message"][draw(_message_fields)] = draw(_json)
    elif kind == "json":
        return json.dumps(draw(_json)).encode()
    elif kind == "bytes":
        return draw(st.binary(max_size=60))
    else:  # text with any code point, surrogates included, escaped as JSON does
        body["choices"][0]["message"]["content"] = draw(st.text(st.characters(codec=None), max_size=20))
    return json.dumps(body).encode()


@pytest.fixture(scope="module")
def shared_server():
    with serve(candidates=ANSWERS, n_mode="ignore") as server:
        yield server


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=hostile_bodies(), stream=st.booleans(), alone=st.booleans())
def test_any_upstream_body_gives_a_completion_or_the_sdks_error(shared_server, body, stream, alone):
    """Beside a good answer the call always succeeds; alone, it succeeds or raises an openai error."""
    shared_server.faults = (Fault(kind="body", body=body, requests={shared_server.generation_requests}),)
    client = wrapped(shared_server, n=1 if alone else 2, concurrency=1)
    try:
        if stream:
            chunks = list(client.chat.completions.create(model="m", messages=MESSAGES, stream=True))
            ranking = rerank.explain(chunks[-1])
        else:
            ranking = rerank.explain(client.chat.completions.create(model="m", messages=MESSAGES))
        assert len(ranking) + len(ranking.failures) == (1 if alone else 2)
    except openai.APIError:
        if not alone:
            raise
    finally:
        client.close()


def test_responses_api_hostile_answer_costs_that_candidate_only(start_server):
    odd = b'{"id": "resp_x", "object": "response", "output": "not a list", "usage": {"input_tokens": 1}}'
    server = start_server(faults=Fault(kind="body", body=odd, requests={0}))
    response = wrapped(server, n=3).responses.create(model="m", input=MESSAGES[0]["content"])
    ranking = rerank.explain(response)
    assert response.output_text in ANSWERS
    assert len(ranking) == 2 and ranking.failures and 'no "output" list' in ranking.failures[0]
    server.faults = (Fault(kind="body", body=odd),)
    with pytest.raises(openai.APIResponseValidationError):
        wrapped(server, n=2).responses.create(model="m", input=MESSAGES[0]["content"])
