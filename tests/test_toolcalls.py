"""Reading function calls out of answers, matching rewritten names, and canonical forms."""

import json

import pytest

from rerank import Candidate
from rerank.toolcalls import (
    ParsedCall,
    canonical_call,
    canonical_calls,
    canonical_json,
    match_function,
    parse_calls,
    parse_text_calls,
)

from conftest import read_pools

QUADRATIC = [
    {
        "type": "function",
        "function": {
            "name": "algebra.quadratic_roots",
            "parameters": {
                "type": "object",
                "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}, "c": {"type": "integer"}},
                "required": ["a", "b", "c"],
            },
        },
    }
]
TTEST = [
    {"type": "function", "function": {"name": "restaurant_search.find_closest", "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}},
    {
        "type": "function",
        "function": {
            "name": "run_two_sample_ttest",
            "parameters": {
                "type": "object",
                "properties": {
                    "group1": {"type": "array", "items": {"type": "integer"}},
                    "group2": {"type": "array", "items": {"type": "integer"}},
                    "equal_variance": {"type": "boolean", "default": True},
                },
                "required": ["group1", "group2"],
            },
        },
    },
]

# Real candidates of bfcl_v1/simple_3, one per shape the models used (copied from the dev pool).
SIMPLE_3 = [
    {"content": '[{"name": "algebra.quadratic_roots", "params": {"a": 1, "b": -3, "c": 2}}]'},
    {"content": None, "tool_calls": [{"id": "call_0", "type": "function", "function": {"name": "algebra_quadratic_roots", "arguments": '{"a":1,"b":-3,"c":2}'}}]},
    {"content": '<|im_start|>\n{"arguments": {"a": 1, "b": -3, "c": 2}, "name": "algebra_quadratic_roots"}\n<|im_start|><|im_start|>assistant<|end_header_id|>\n\nThe roots are x = (3 ± √1) / 2, so x = 1 and x = 2.'},
    {"content": '[{"algebra_quadratic_roots": "{\\"a\\": 1, \\"b\\": -3, \\"c\\": 2}"}]'},
    {"content": "[algebra.quadratic_roots(a=1, b=-3, c=2)]"},
]
# Real candidates of bfcl_v1/multiple_function_125.
MULTIPLE_125 = [
    {"content": "[run_two_sample_ttest(group1=[3, 4, 5, 6, 4], group2=[7, 8, 9, 8, 7], equal_variance=True)]"},
    {"content": '<tool_call>\n{"arguments": {"group1": [3, 4, 5, 6, 4], "group2": [7, 8, 9, 8, 7], "equal_variance": true}, "name": "run_two_sample_ttest"}\n</tool_call>\n'},
    {"content": '\nTo run a two sample t-test comparing the average of Group A [3, 4, 5, 6, 4] and Group B [7, 8, 9, 8, 7] assuming equal variance, we will use the `run_two_sample_ttest` function with the parameters:\n\n```json\n{\n  "equal_variance": true,\n  "group1": [3, 4, 5, 6, 4],\n  "group2": [7, 8, 9, 8, 7]\n}\n```run_two_sample_ttest\n{"equal_variance": true, "group1": [3, 4, 5, 6, 4], "group2": [7, 8, 9, 8, 7]}'},
    {"content": '[{"run_two_sample_ttest": "{\\"equal_variance\\": true, \\"group1\\": [3, 4, 5, 6, 4], \\"group2\\": [7, 8, 9, 8, 7]}"}]'},
    {"content": "[run_two_sample_ttest(group1=[3, 4, 5, 6, 4], group2=[7, 8, 9, 8, 7])]"},
]


def calls_of(content, **kwargs):
    return parse_calls(Candidate.coerce(content if isinstance(content, dict) else {"content": content}), **kwargs)


@pytest.mark.parametrize("message", SIMPLE_3)
def test_every_shape_of_a_real_pool_reads_as_the_same_call(message):
    calls = calls_of(message, tools=QUADRATIC)
    assert len(calls) == 1 and calls[0].ok
    assert canonical_call(calls[0], QUADRATIC) == ("algebra.quadratic_roots", (("a", "1.0"), ("b", "-3.0"), ("c", "2.0")))


def test_identical_calls_written_differently_share_one_canonical_form():
    forms = {canonical_calls(calls_of(m, tools=TTEST), TTEST) for m in MULTIPLE_125}
    assert forms == {(("run_two_sample_ttest", (("group1", "[3.0,4.0,5.0,6.0,4.0]"), ("group2", "[7.0,8.0,9.0,8.0,7.0]"))),)}
    different = calls_of("[run_two_sample_ttest(group1=[3, 4], group2=[7, 8], equal_variance=False)]")
    assert canonical_calls(different, TTEST) not in forms


def test_canonical_form_keeps_what_differs():
    one = ParsedCall("f", {"x": 1, "flag": True, "items": (1, 2)})
    assert canonical_call(one) == ("f", (("flag", "true"), ("items", "[1.0,2.0]"), ("x", "1.0")))
    assert canonical_call(ParsedCall("f", {"x": 1.0})) == canonical_call(ParsedCall("f", {"x": 1}))
    assert canonical_call(ParsedCall("f", {"x": True})) != canonical_call(ParsedCall("f", {"x": 1}))
    assert canonical_call(ParsedCall("f", {"x": "1"})) != canonical_call(ParsedCall("f", {"x": 1}))
    assert canonical_call(ParsedCall("f", None, "broken")) == ("f", None)
    assert canonical_json({"b": [1, {"z": 2, "a": None}], "a": "é"}) == '{"a":"é","b":[1.0,{"a":null,"z":2.0}]}'
    parallel = [ParsedCall("f", {"n": 1}), ParsedCall("f", {"n": 2})]
    assert canonical_calls(parallel) == canonical_calls(parallel[::-1])


def test_drop_defaults_is_optional():
    call = calls_of("run_two_sample_ttest(group1=[1], group2=[2], equal_variance=True)")[0]
    assert "equal_variance" not in dict(canonical_call(call, TTEST)[1])
    assert "equal_variance" in dict(canonical_call(call, TTEST, drop_defaults=False)[1])


def test_match_function_exact_then_rewritten_then_namespaced():
    tools = QUADRATIC + [{"type": "function", "function": {"name": "algebra_quadratic_roots"}}]
    assert match_function("algebra_quadratic_roots", tools)["name"] == "algebra_quadratic_roots"  # exact wins
    assert match_function("algebra_quadratic_roots", QUADRATIC)["name"] == "algebra.quadratic_roots"
    assert match_function("Algebra-Quadratic_Roots", QUADRATIC)["name"] == "algebra.quadratic_roots"
    assert match_function("functions.algebra.quadratic_roots", QUADRATIC)["name"] == "algebra.quadratic_roots"
    assert match_function("default_api.algebra_quadratic_roots", QUADRATIC)["name"] == "algebra.quadratic_roots"
    assert match_function("algebra.cubic_roots", QUADRATIC) is None
    assert match_function("quadratic_roots", QUADRATIC) is None
    bare = [{"name": "get_weather", "parameters": {}}]  # a tool given as the function itself
    assert match_function("get_weather", bare) == bare[0]


def test_python_call_syntax_lists_and_single_calls():
    calls = parse_text_calls('[get_weather(city="Paris", days=3), other(x=1)]')
    assert calls == [ParsedCall("get_weather", {"city": "Paris", "days": 3}), ParsedCall("other", {"x": 1})]
    assert parse_text_calls("func(a=1);") == [ParsedCall("func", {"a": 1})]
    assert parse_text_calls("f(coord=(1.5, -2), opts={'k': None}, on=True)") == [
        ParsedCall("f", {"coord": [1.5, -2], "opts": {"k": None}, "on": True})
    ]
    assert parse_text_calls("```python\n    [math.gcd(num1=12, num2=18)]\n```") == [ParsedCall("math.gcd", {"num1": 12, "num2": 18})]
    assert parse_text_calls("['get_prime_factors(number=450, formatted=True)']") == [
        ParsedCall("get_prime_factors", {"number": 450, "formatted": True})
    ]
    assert parse_text_calls("print(default_api.get_time(zone='UTC'))") == [ParsedCall("default_api.get_time", {"zone": "UTC"})]
    assert parse_text_calls("geometry.circumference({'radius': 3, 'units': 'cm'})") == [
        ParsedCall("geometry.circumference", {"radius": 3, "units": "cm"})
    ]


def test_markdown_escaped_underscores_are_unescaped():
    # real candidate of bfcl_v1/simple_33
    text = '[get\\_directions(start\\_location="Sydney", end\\_location="Melbourne", route\\_type="fastest")]'
    assert parse_text_calls(text) == [
        ParsedCall("get_directions", {"start_location": "Sydney", "end_location": "Melbourne", "route_type": "fastest"})
    ]


def test_json_shapes():
    assert parse_text_calls('```json\n{"name": "f", "arguments": {"x": 1}}\n```') == [ParsedCall("f", {"x": 1})]
    assert parse_text_calls('{"tool_calls": [{"name": "f", "arguments": "{\\"x\\": 2}"}]}') == [ParsedCall("f", {"x": 2})]
    assert parse_text_calls('[{"type": "function", "function": {"name": "f", "arguments": {"x": 3}}}]') == [
        ParsedCall("f", {"x": 3})
    ]
    assert parse_text_calls('[{"name": "calc", "vectorA": [1], "vectorB": [2]}]') == [
        ParsedCall("calc", {"vectorA": [1], "vectorB": [2]})
    ]
    assert parse_text_calls("[('get_stock_info', {'company_name': 'Apple Inc.'})]") == [
        ParsedCall("get_stock_info", {"company_name": "Apple Inc."})
    ]
    assert parse_text_calls('get_news\n{"topic": "AI", "quantity": 5}') == [ParsedCall("get_news", {"topic": "AI", "quantity": 5})]
    assert parse_text_calls('<function_call> {"name": "f", "parameters": {"q": "ünïcødé ✓"}}') == [
        ParsedCall("f", {"q": "ünïcødé ✓"})
    ]


def test_structured_tool_calls_and_their_errors():
    message = {
        "content": "ignored when tool_calls exist: g(x=1)",
        "tool_calls": [
            {"function": {"name": "f", "arguments": '{"x": 1}'}},
            {"function": {"name": "f", "arguments": ""}},
            {"function": {"name": "f", "arguments": '{"x": 1'}},
            {"function": {"name": "f", "arguments": "[1, 2]"}},
        ],
    }
    calls = calls_of(message)
    assert [c.name for c in calls] == ["f"] * 4
    assert calls[0] == ParsedCall("f", {"x": 1}) and calls[1] == ParsedCall("f", {})
    assert "not valid JSON" in calls[2].error and "line 1" in calls[2].error
    assert "must be a JSON object" in calls[3].error


def test_no_call_in_text_or_empty_content():
    assert calls_of(None) == []
    assert calls_of("") == []
    assert calls_of("[]") == []
    assert calls_of("I'm sorry, none of the provided functions can compute the area of a triangle.") == []


def test_prose_calls_count_only_offered_functions_when_tools_are_known():
    text = "Use math.sqrt(x) first, then algebra_quadratic_roots(a=1, b=-3, c=2) gives the roots."
    assert [c.name for c in parse_text_calls(text, tools=QUADRATIC)] == ["algebra_quadratic_roots"]
    assert [c.name for c in parse_text_calls(text)] == ["algebra_quadratic_roots"]  # math.sqrt(x) has a positional arg


def test_arguments_are_literals_never_evaluated(tmp_path):
    marker = tmp_path / "pwned"
    call = parse_text_calls(f"f(x=__import__('pathlib').Path({str(marker)!r}).touch())")[0]
    assert call.arguments is None and "not a literal" in call.error
    assert not marker.exists()
    assert parse_text_calls("f(p=1/6, big=2**10)")[0].arguments == {"p": pytest.approx(1 / 6), "big": 1024}
    assert parse_text_calls("f(x=10**10**10)")[0].error  # refused, not computed
    assert parse_text_calls("f(monitor=dbMonitor, mode=os.O_RDONLY)")[0].arguments == {"monitor": "dbMonitor", "mode": "os.O_RDONLY"}
    assert "positional" in parse_text_calls("f(1, 2)")[0].error


def test_pathological_inputs_are_refused_with_a_reason():
    huge = calls_of("x" * 200_000)
    assert len(huge) == 1 and huge[0].arguments is None and "200,000 characters" in huge[0].error
    for deep in ("[" * 5000 + "]" * 5000, "f(x=" + "[" * 3000 + "]" * 3000 + ")", "a(" * 20_000, "{" * 50_000):
        (refused,) = calls_of(deep)
        assert refused.arguments is None and "levels deep" in refused.error
    assert calls_of("[" * 60 + "f(x=1)" + "]" * 60) == [ParsedCall("f", {"x": 1})]  # deep, but within bounds
    assert len(calls_of("f(x=1) " * 5000)) == 5000


def test_most_real_bfcl_candidates_that_call_parse(bench_dir):
    pools = read_pools("bfcl", limit=120)
    parsed = total = 0
    for pool in pools:
        if pool["id"].startswith("bfcl_v1/relevance"):
            continue  # those should mostly not call at all
        for message in pool["candidates"]:
            calls = calls_of(message, tools=pool["tools"])
            total += 1
            parsed += bool(calls) and all(c.ok for c in calls)
            json.dumps([c.arguments for c in calls])  # arguments are JSON-like
    assert total > 500 and parsed / total > 0.9


def test_explicit_call_markup_counts_even_for_a_function_not_offered():
    # bfcl_v1/relevance_8: a call to an invented function must be seen (and gated), not read as prose
    tools = ({"type": "function", "function": {"name": "integrate.quad", "parameters": {"type": "object"}}},)
    text = '<tool_call> {"arguments": {"f": "lambda x: x**3", "a": 1, "b": 5}, "name": "integral"} </tool_call>'
    calls = parse_calls(Candidate(text), tools=tools)
    assert [(c.name, c.arguments) for c in calls] == [("integral", {"f": "lambda x: x**3", "a": 1, "b": 5})]
    two = "<tool_call>\n" + '{"name": "f", "arguments": {"n": 1}}' + "\n</tool_call>\n<tool_call>\n" + '{"name": "f", "arguments": {"n": 2}}'
    assert [c.arguments for c in parse_calls(Candidate(two))] == [{"n": 1}, {"n": 2}]
