"""Structure-aware agreement: tool calls by meaning, code by its own tokens and by its behaviour."""

import ast

import numpy as np
import pytest

from rerank import Candidate, Request, Reranker
from rerank.probes import probe_calls
from rerank.python_checks import completion_of
from rerank.scorers.code import CodeConsensus, Simplicity
from rerank.scorers.execution import ExecutionConsensus
from rerank.scorers.tool_consensus import ToolConsensus, calls_similarity

TOOLS = ({"type": "function", "function": {"name": "algebra.quadratic_roots", "parameters": {
    "type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}, "c": {"type": "integer"}},
    "required": ["a", "b", "c"]}}},)
QUADRATIC = Request("Find the roots of a quadratic equation with coefficients a=1, b=-3, c=2.", tools=TOOLS)


def test_the_same_call_written_three_ways_agrees_and_the_odd_call_loses():
    pool = [
        Candidate(tool_calls=(), content='[algebra.quadratic_roots(a=1, b=-3, c=2)]'),
        Candidate.coerce({"tool_calls": [{"function": {"name": "algebra_quadratic_roots", "arguments": '{"a":1,"b":-3,"c":2}'}}]}),
        Candidate('{"name": "algebra.quadratic_roots", "arguments": {"a": 1.0, "b": -3, "c": 2}}'),
        Candidate('[algebra.quadratic_roots(a=1, b=3, c=2)]'),
    ]
    scores = ToolConsensus().score(QUADRATIC, pool)
    assert scores[0] == scores[1] == scores[2] > scores[3]
    assert Reranker().rank(QUADRATIC, pool).best_index == 0


def test_declining_to_call_wins_when_most_candidates_decline():
    request = Request("What is the area of a triangle with base 10 and height 5?", tools=TOOLS)
    pool = [
        Candidate("None of the provided functions can compute the area of a triangle."),
        Candidate("[algebra.quadratic_roots(a=10, b=5, c=0)]"),
        Candidate("The area is 10 * 5 / 2 = 25 square metres."),
        Candidate("I can't do that with the quadratic solver; the area is 25."),
    ]
    ranking = Reranker().rank(request, pool)
    assert ranking.profile == "tools"
    assert ranking.best_index != 1


def test_partial_agreement_is_partial():
    same_function = calls_similarity([("f", (("a", "1.0"), ("b", "2.0")))], [("f", (("a", "1.0"), ("b", "3.0")))])
    assert same_function == 0.75
    assert calls_similarity([], []) == 1.0 and calls_similarity([], [("f", ())]) == 0.0
    assert calls_similarity([("f", ()), ("g", ())], [("g", ())]) == 0.5


PROMPT = 'def add_evens(xs: list) -> int:\n    """Sum the even numbers of xs."""\n'
RIGHT = PROMPT + "    return sum(x for x in xs if x % 2 == 0)\n"
RIGHT_TOO = PROMPT + "    total = 0\n    for x in xs:\n        if x % 2 == 0:\n            total += x\n    return total\n"
WRONG = PROMPT + "    return sum(x for x in xs if x % 2 == 1)\n"
LOOPS = PROMPT + "    while True:\n        pass\n"


def test_completion_is_what_follows_the_repeated_prompt():
    assert completion_of(RIGHT, PROMPT) == "\n    return sum(x for x in xs if x % 2 == 0)\n"
    assert completion_of("x = 1", PROMPT) == "x = 1"


def test_code_consensus_reads_completions_and_simplicity_prefers_shorter_code():
    request = Request(PROMPT)
    pool = [Candidate(RIGHT), Candidate(RIGHT), Candidate(RIGHT_TOO), Candidate(PROMPT + "    import os\n    return os.getcwd()\n")]
    scores = CodeConsensus().score(request, pool)
    assert int(np.argmin(scores)) == 3 and scores[0] == scores[1]
    shortness = Simplicity().score(request, pool)
    assert shortness[0] > shortness[2]


def test_probe_inputs_follow_the_signature_and_are_deterministic():
    calls = probe_calls(PROMPT, "add_evens", count=5)
    assert len(calls) == 5 and all(c.startswith("add_evens([") for c in calls)
    assert calls == probe_calls(PROMPT, "add_evens", count=5)
    text_calls = probe_calls('def shout(text: str) -> str:\n    """Upper-case text, e.g. \'hi\'."""\n', "shout", count=30)
    assert "shout('hi')" in text_calls


def test_probe_types_come_from_how_the_docstring_describes_each_parameter():
    # HumanEval/104 and /112 without annotations: the docstring alone says what x, s and c are
    digits = 'def unique_digits(x):\n    """Given a list of positive integers x. return a sorted list."""\n'
    calls = probe_calls(digits, "unique_digits", count=24)
    assert len(calls) == 24 and all(isinstance(ast.literal_eval(c[len("unique_digits("):-1]), list) for c in calls)
    assert any(v >= 10 for c in calls for v in ast.literal_eval(c[len("unique_digits("):-1]))  # multi-digit values
    strings = 'def reverse_delete(s, c):\n    """We are given two strings s and c, delete from s every character in c."""\n'
    for call in probe_calls(strings, "reverse_delete", count=24):
        s_value, c_value = ast.literal_eval(call[len("reverse_delete"):])
        assert isinstance(s_value, str) and isinstance(c_value, str)
    after = 'def pile(n):\n    """n is a positive integer; return a list of n levels."""\n'
    assert all(isinstance(ast.literal_eval(c[5:-1]), int) for c in probe_calls(after, "pile", count=12))
    # nothing said about `thing`: several type families are tried
    vague = 'def f(thing):\n    """Do it."""\n'
    kinds = {type(ast.literal_eval(c[2:-1])) for c in probe_calls(vague, "f", count=24)}
    assert len(kinds) >= 3


@pytest.mark.slow
def test_execution_consensus_rewards_agreeing_behaviour_and_survives_a_hang():
    request = Request(PROMPT)
    pool = [Candidate(RIGHT), Candidate(WRONG), Candidate(RIGHT_TOO), Candidate(LOOPS)]
    scorer = ExecutionConsensus(probes=6, timeout=1.0)
    outputs = scorer.outputs(request, pool)
    assert outputs[0] == outputs[2] != outputs[1]
    assert all(o is None for o in outputs[3])
    scores = scorer.score(request, pool)
    assert scores[0] == scores[2]
    assert scores[0] > scores[1] >= scores[3] == 0.0


@pytest.mark.slow
def test_execution_consensus_runs_each_program_once_and_remembers_its_outputs():
    # A program whose outputs differ on every run shows whether it ran again: adaptive N looks
    # at a growing pool after every round, and each look must not re-run the programs it saw.
    request = Request(PROMPT)
    noisy = Candidate(PROMPT + "    import random\n    return random.random()\n")
    scorer = ExecutionConsensus(probes=3, timeout=1.0)
    first = scorer.outputs(request, [noisy, Candidate(RIGHT)])
    grown = scorer.outputs(request, [Candidate(RIGHT), noisy, Candidate(WRONG)])
    assert grown[1] == first[0] and grown[0] == first[1] and grown[2] != grown[0]
    assert all(o is not None for o in first[0])
    fresh = ExecutionConsensus(probes=3, timeout=1.0).outputs(request, [noisy])
    assert fresh[0] != first[0]


def test_code_profiles_follow_what_the_user_allows():
    pool = [RIGHT, WRONG, RIGHT_TOO]
    assert Reranker().rank(PROMPT, pool).profile == "code"
    executed = Reranker(validators=["python-doctest"]).rank(PROMPT, pool)
    assert executed.profile == "code-exec" and "execution" in executed.weights
    assert executed.best_index in (0, 2)


def test_json_consensus_compares_values_not_formatting():
    from rerank.scorers.json_consensus import JSONConsensus, leaves

    assert leaves({"a": [1, {"b": "x"}]}) == {("$.a[0]", "1.0"), ("$.a[1].b", '"x"')}
    request = Request("Extract the order as JSON.", schema={"type": "object"})
    pool = [
        Candidate('{"item": "tea", "qty": 2}'),
        Candidate('```json\n{ "qty": 2.0,\n  "item": "tea" }\n```'),
        Candidate('{"item": "coffee", "qty": 2}'),
        Candidate("Two teas, please."),
    ]
    scores = JSONConsensus().score(request, pool)
    assert scores[0] == scores[1] > scores[2] > scores[3] == 0.0
    ranking = Reranker().rank(request, pool)
    assert ranking.profile == "json" and ranking.best_index == 0
