import pytest

from rerank import Candidate, InputError, Request, ToolCall
from rerank.types import MAX_TEXT_CHARS, coerce_candidates


def test_string_is_content():
    assert Candidate.coerce("hello") == Candidate(content="hello")


def test_message_with_tool_calls_keeps_openai_shape():
    msg = {"content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}]}
    cand = Candidate.coerce(msg)
    assert cand.tool_calls == (ToolCall(name="f", arguments='{"a": 1}', id="c1"),)
    assert cand.text == 'f({"a": 1})'
    assert cand.to_message() == {"role": "assistant", **msg}


def test_arguments_given_as_object_are_serialised():
    cand = Candidate.coerce({"tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}}]})
    assert cand.tool_calls[0].arguments == '{"a": 1}'


@pytest.mark.parametrize("bad, fragment", [
    (3, "string or an assistant message"),
    ({"content": 5}, "content must be a string"),
    ({"tool_calls": "x"}, "tool_calls must be a list"),
    ({"tool_calls": [{"function": {"arguments": "{}"}}]}, "name"),
    ("x" * (MAX_TEXT_CHARS + 1), "limit"),
])
def test_bad_candidates_say_what_is_wrong(bad, fragment):
    with pytest.raises(InputError, match=fragment):
        Candidate.coerce(bad)


def test_empty_pool_and_non_list_are_refused():
    with pytest.raises(InputError, match="empty"):
        coerce_candidates([])
    with pytest.raises(InputError, match="must be a list"):
        coerce_candidates("abc")
    with pytest.raises(InputError, match="candidate 1"):
        coerce_candidates(["ok", 7])


def test_request_from_mapping_joins_context_passages():
    req = Request.coerce({"query": "q", "context": ["a", "b"], "tools": [{"type": "function"}]})
    assert req.context == "a\n\nb" and len(req.tools) == 1


@pytest.mark.parametrize("bad", [{"query": 1}, {"query": "q", "tools": "x"}, {"query": "q", "schema": []}, 5])
def test_bad_requests_are_refused(bad):
    with pytest.raises(InputError):
        Request.coerce(bad)
