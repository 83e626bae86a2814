"""The built-in validators on passing and failing answers, real ones from the dev pools included."""

import pytest

from rerank import Candidate, ConfigError, InputError, Request, Reranker
from rerank.registry import BUILTIN_VALIDATORS, make_validator
from rerank.validators.json_validators import JSONSchemaValidator, JSONValidator
from rerank.validators.python import DoctestValidator, PythonValidator, examples_for, same_value
from rerank.validators.text import LengthValidator, RegexValidator
from rerank.validators.tools import ToolCallValidator, normalise_schema

from conftest import read_pools


def check(validator, request, content):
    request = Request.coerce(request)
    return validator.check(request, Candidate.coerce(content))


def test_every_registered_validator_builds_with_defaults_and_has_its_name():
    for name in BUILTIN_VALIDATORS:
        assert make_validator(name).name == name


# --- json --------------------------------------------------------------------------------------


def test_json_bare_fenced_and_first_block():
    v = JSONValidator()
    assert check(v, "q", '{"a": [1, 2]}').passed
    assert check(v, "q", 'Here it is:\n```json\n{"city": "Zürich ✓"}\n```\nDone.').passed
    assert check(v, "q", "Result:\n```\n[1, 2, 3]\n```").passed
    assert check(v, "q", '  "just a string"  ').message == "valid JSON (a string)"


def test_json_failures_say_where():
    v = JSONValidator()
    bad = check(v, "q", '{"a": 1,\n "b": [1, 2,, 3]}')
    assert not bad.passed and "line 2, column" in bad.message
    fenced = check(v, "q", '```json\n{"a": }\n```')
    assert not fenced.passed and fenced.message.startswith("the ```json block is not JSON")
    prose = check(v, "q", 'Sure! {"a": 1}')
    assert not prose.passed and "not JSON" in prose.message
    assert "empty" in check(v, "q", "").message
    only_call = check(v, "q", {"content": None, "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]})
    assert not only_call.passed and "tool call" in only_call.message
    deep = check(v, "q", "[" * 1000 + "]" * 1000)
    assert not deep.passed and "1000 levels" in deep.message


# --- json-schema -------------------------------------------------------------------------------

SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}}},
    "required": ["name"],
    "additionalProperties": False,
}


def test_json_validators_name_an_answer_without_text():
    assert check(JSONValidator(), "q", "").message == "no text to parse: the answer is empty; expected JSON"
    call = {"content": None, "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]}
    schema_check = check(JSONSchemaValidator(), {"query": "q", "schema": SCHEMA}, call)
    assert not schema_check.passed
    assert schema_check.message == "no text to check: the answer is a tool call; expected JSON matching the schema"


def test_json_schema_applies_only_with_a_schema():
    v = JSONSchemaValidator()
    assert not v.applies(Request("q"))
    assert v.applies(Request("q", schema=SCHEMA))


def test_json_schema_pass_and_first_error_path():
    v = JSONSchemaValidator()
    request = {"query": "q", "schema": SCHEMA}
    assert check(v, request, '{"name": "Ada", "tags": ["math"]}').passed
    wrong = check(v, request, '```json\n{"name": "Ada", "tags": ["math", 7]}\n```')
    assert not wrong.passed and wrong.message == "at $.tags[1]: 7 is not of type 'string'"
    missing = check(v, request, '{"tags": []}')
    assert "'name' is a required property" in missing.message
    extra = check(v, request, '{"name": "Ada", "age": 36}')
    assert "'age' was unexpected" in extra.message
    assert not check(v, request, "{name: Ada}").passed


@pytest.mark.parametrize(
    "wrapped",
    [
        {"name": "person", "strict": True, "schema": SCHEMA},
        {"type": "json_schema", "json_schema": {"name": "person", "strict": True, "schema": SCHEMA}},
    ],
)
def test_json_schema_unwraps_openai_response_format(wrapped):
    v = JSONSchemaValidator()
    assert check(v, {"query": "q", "schema": wrapped}, '{"name": "Ada"}').passed
    assert not check(v, {"query": "q", "schema": wrapped}, '{"name": 1}').passed


def test_json_schema_refuses_a_broken_schema_or_remote_refs():
    with pytest.raises(InputError, match="not a valid JSON Schema"):
        check(JSONSchemaValidator(), {"query": "q", "schema": {"type": 12}}, "{}")
    with pytest.raises(InputError, match="never fetched"):
        check(JSONSchemaValidator(), {"query": "q", "schema": {"$ref": "https://example.com/s.json"}}, "{}")


# --- tools -------------------------------------------------------------------------------------

WEATHER = [
    {
        "type": "function",
        "function": {
            "name": "weather.get_forecast",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "days": {"type": "integer", "minimum": 1},
                    "units": {"type": "string", "enum": ["metric", "imperial"]},
                },
                "required": ["city"],
            },
        },
    },
    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}}}},
]


def tools_check(content, **options):
    return check(ToolCallValidator(**options), {"query": "weather?", "tools": WEATHER}, content)


def test_tools_applies_only_when_tools_are_offered():
    assert not ToolCallValidator().applies(Request("q"))
    assert ToolCallValidator().applies(Request("q", tools=tuple(WEATHER)))


def test_tools_accepts_valid_calls_in_every_shape():
    assert tools_check('[weather_get_forecast(city="Paris", days=3), get_time(tz="Europe/Paris")]').passed
    assert tools_check('```json\n{"name": "weather.get_forecast", "arguments": {"city": "Köln"}}\n```').passed
    native = {"content": None, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "weather-get_forecast", "arguments": '{"city": "Oslo", "units": "metric"}'}}]}
    result = tools_check(native)
    assert result.passed and result.message == "1 valid call to weather.get_forecast"
    assert tools_check("weather.get_forecast(city='Rome', days=None)").passed  # null optional = not given


def test_tools_failures_name_the_problem():
    unknown = tools_check("[get_weather(city='Paris')]")
    assert not unknown.passed and "'get_weather' is not an offered function" in unknown.message
    assert "weather.get_forecast, get_time" in unknown.message
    wrong_type = tools_check("[weather.get_forecast(city='Paris', days='three')]", strict_types=True)
    assert wrong_type.message == "call to weather.get_forecast: at arguments.days: 'three' is not of type 'integer'"
    bad_enum = tools_check("weather.get_forecast(city='Paris', units='kelvin')")
    assert not bad_enum.passed and "'kelvin' is not one of ['metric', 'imperial']" in bad_enum.message
    too_small = tools_check('{"name": "weather.get_forecast", "arguments": {"city": "Paris", "days": 0}}')
    assert "at arguments.days: 0 is less than the minimum of 1" in too_small.message
    missing = tools_check("weather.get_forecast(days=2)")
    assert "'city' is a required property" in missing.message
    extra = tools_check("weather.get_forecast(city='Paris', colour='red')")
    assert "'colour' is not a parameter of weather.get_forecast" in extra.message
    assert tools_check("weather.get_forecast(city='Paris', colour='red')", allow_extra_arguments=True).passed
    second = tools_check("[get_time(tz='UTC'), weather.get_forecast(city=city_name())]")
    assert second.message.startswith("call 2 (weather.get_forecast): argument 'city' is not a literal value")
    bad_json = tools_check({"tool_calls": [{"function": {"name": "get_time", "arguments": '{"tz": '}}]})
    assert "not valid JSON" in bad_json.message


def test_tools_text_answer_passes_by_default_and_fails_when_a_call_is_required():
    # a real candidate from bfcl_v1/relevance_0: answering in text is right there
    text = "I'm sorry, but I don't have a function to calculate the area of a triangle. The only function I have is to determine body mass index given weight and height."
    assert tools_check(text).passed
    assert tools_check(text).message == "no tool call: the answer is text only"
    refused = tools_check(text, require_call=True)
    assert not refused.passed and refused.message.startswith("no tool call found")
    assert not tools_check("", require_call=True).passed
    assert not tools_check("[]", require_call=True).passed


def test_tools_passes_a_wrong_argument_type_with_a_note_unless_strict():
    loose = tools_check("weather.get_forecast(city='Paris', days='soon')")
    assert loose.passed and loose.message == (
        "1 valid call to weather.get_forecast (argument types differ from the schema: "
        "call to weather.get_forecast: at arguments.days: 'soon' is not of type 'integer')")
    assert not tools_check("weather.get_forecast(city='Paris', days='soon')", strict_types=True).passed
    # a wrong type never hides a structural problem
    assert not tools_check("weather.get_forecast(days='soon')").passed


def test_strict_types_accepts_strings_that_spell_the_type_unless_told_not_to():
    call = "weather.get_forecast(city='Paris', days='3')"
    assert tools_check(call, strict_types=True).passed
    assert not tools_check(call, strict_types=True, coerce_strings=False).passed
    assert tools_check("weather.get_forecast(city='Paris', days=3.0)", strict_types=True).passed
    assert not tools_check("weather.get_forecast(city='Paris', days=3.5)", strict_types=True).passed
    # JSON Schema: 3.0 is an integer
    assert tools_check("weather.get_forecast(city='Paris', days=3.0)", strict_types=True, coerce_strings=False).passed


def test_tool_schemas_in_language_types_are_normalised():
    schema = {"type": "dict", "properties": {"x": {"type": "float"}, "xs": {"type": "tuple", "items": {"type": "String"}}, "o": {"type": "any"}}}
    assert normalise_schema(schema) == {
        "type": "object",
        "properties": {"x": {"type": "number"}, "xs": {"type": "array", "items": {"type": "string"}}, "o": {}},
    }
    tools = [{"type": "function", "function": {"name": "f", "parameters": schema}}]
    assert check(ToolCallValidator(), {"query": "q", "tools": tools}, "f(x=1.5, xs=('a', 'b'), o=object_ref)").passed
    assert not check(ToolCallValidator(strict_types=True, coerce_strings=False), {"query": "q", "tools": tools}, "f(x='1.5')").passed


def test_tools_on_a_real_pool_accepts_every_shape_models_used(bench_dir):
    pool = next(p for p in read_pools("bfcl") if p["id"] == "bfcl_v1/simple_3")
    # read by hand: every candidate calls algebra.quadratic_roots (some as algebra_quadratic_roots)
    # with a=1, b=-3, c=2, natively, as JSON, as Python, or in a <|im_start|> block followed by prose
    checks = ToolCallValidator().check_pool(Request.coerce(pool), [Candidate.coerce(c) for c in pool["candidates"]])
    assert [c.passed for c in checks] == [True] * len(pool["candidates"])


# --- python (static) ---------------------------------------------------------------------------

# The real query of HumanEval/99 and completions sampled for it (copied from the dev pool).
CLOSEST_QUERY = (
    "\ndef closest_integer(value):\n    '''\n    Create a function that takes a value (string) representing a number\n"
    "    and returns the closest integer to it. If the number is equidistant\n    from two integers, round it away from zero.\n\n"
    "    Note:\n    Rounding away from zero means that if the given number is equidistant\n    from two integers, the one you "
    "should return is the one that is the\n    farthest from zero. For example closest_integer(\"14.5\") should\n"
    "    return 15 and closest_integer(\"-14.5\") should return -15.\n    '''\n"
)
AWAY_FROM_ZERO = CLOSEST_QUERY + (
    "    value = float(value)\n    if value.is_integer():\n        return int(value)\n    elif value > 0:\n"
    "        return int(value) + 1\n    else:\n        return int(value) - 1\n"
)
BANKERS = CLOSEST_QUERY + "    return round(float(value))\n"
INT_PARSE = CLOSEST_QUERY + (
    "    if value[0] == '-':\n        return -int(value[1:])\n    else:\n        return int(value)\n"
)
MINUS_HALF_WITH_CHINESE_TAIL = CLOSEST_QUERY + (
    "    value = float(value)\n    if value % 1 > 0.5:\n        return value - 0.5\n    return value - 0.5\n"
    '"""\n给定一个字符串 s ，找到其中最长的回文子序列，并返回该序列的长度。\n"""\n'
)
# HumanEval/101: a sample that stops after the docstring, and one that repeats the docstring badly.
WORDS_QUERY = (
    '\ndef words_string(s):\n    """\n    You will be given a string of words separated by commas or spaces. Your task is\n'
    '    to split the string into words and return an array of the words.\n    """\n'
)
WORDS_STUB = WORDS_QUERY + "    " + "#" * 120
WORDS_BROKEN = WORDS_QUERY + "\n    You will be given a string of words.\n    \"\"\"\n    return s.split()\n"
WORDS_OK = WORDS_QUERY + "    return s.replace(',', ' ').split()\n"


def test_python_static_passes_finished_code_and_needs_no_execution():
    v = PythonValidator()
    for code in (AWAY_FROM_ZERO, BANKERS, INT_PARSE, MINUS_HALF_WITH_CHINESE_TAIL):
        result = check(v, CLOSEST_QUERY, code)
        assert result.passed, result.message
    assert check(v, WORDS_QUERY, WORDS_OK).message == "parses and defines words_string() with a compatible signature"


def test_python_static_failures():
    v = PythonValidator()
    stub = check(v, WORDS_QUERY, WORDS_STUB)
    assert not stub.passed and "words_string() has no body" in stub.message
    broken = check(v, WORDS_QUERY, WORDS_BROKEN)
    assert not broken.passed and broken.message.startswith("the code does not parse")
    other = check(v, WORDS_QUERY, "def split_words(s):\n    return s.split()\n")
    assert other.message == "the code does not define words_string(), the function the query asks for"
    arity = check(v, WORDS_QUERY, "def words_string(s, sep):\n    return s.split(sep)\n")
    assert not arity.passed and "requires 2 positional arguments" in arity.message
    todo = check(v, WORDS_QUERY, "def words_string(s):\n    raise NotImplementedError('later')\n")
    assert "raises NotImplementedError" in todo.message
    dots = check(v, "Write a function named `mean(xs)`.", "```python\ndef mean(xs):\n    ...\n```")
    assert "mean() has no body" in dots.message
    assert "no Python code found" in check(v, "q", "").message
    assert "no Python code found" in check(v, "q", "```json\n{}\n```").message
    assert "return' outside function" in check(v, "q", "return 1").message
    assert "no Python statements" in check(v, "Is Paris in France?", "Yes").message


def test_python_static_reads_fenced_code_and_optional_entry_point():
    answer = "Here you go:\n\n```python\ndef add(a, b=0, *rest):\n    return a + b + sum(rest)\n```\nExplanation follows."
    assert check(PythonValidator(), "def add(a, b):\n    '''Add two numbers.'''\n", answer).passed
    assert not check(PythonValidator(entry_point="subtract"), "q", answer).passed
    assert check(PythonValidator(entry_point="add"), "q", answer).passed
    with pytest.raises(ConfigError):
        PythonValidator(entry_point="not a name")


# --- python-doctest ----------------------------------------------------------------------------


def test_doctest_examples_of_the_real_query():
    examples = examples_for(CLOSEST_QUERY)
    assert [(e.call, e.expected) for e in examples] == [("closest_integer('14.5')", 15), ("closest_integer('-14.5')", -15)]


def test_doctest_runs_examples_on_correct_and_wrong_solutions():
    v = DoctestValidator(timeout=3)
    request = Request(CLOSEST_QUERY)
    pool = [Candidate(c) for c in (AWAY_FROM_ZERO, BANKERS, INT_PARSE, MINUS_HALF_WITH_CHINESE_TAIL, WORDS_STUB)]
    checks = v.check_pool(request, pool)
    assert checks[0].passed and checks[0].message == "all 2 docstring examples pass"
    assert not checks[1].passed and "closest_integer('14.5') returned 14, expected 15" in checks[1].message
    assert not checks[2].passed and "raised ValueError" in checks[2].message
    assert not checks[3].passed and "returned 14.0, expected 15" in checks[3].message
    assert not checks[4].passed and "does not define closest_integer()" in checks[4].message


EXAMPLE_FORMS = [
    ("words_string(s)", 'words_string("Hi, my name") == ["Hi", "my", "name"]', "words_string('Hi, my name')", ["Hi", "my", "name"]),
    ("choose_num(x, y)", "choose_num(13, 12) = -1", "choose_num(13, 12)", -1),
    ("rounded_avg(n, m)", 'rounded_avg(1, 5) => "0b11"', "rounded_avg(1, 5)", "0b11"),
    ("move_one_ball(arr)", "move_one_ball([3, 4, 5, 1, 2])==>True", "move_one_ball([3, 4, 5, 1, 2])", True),
    ("eat(a, b, c)", "* eat(5, 6, 10) -> [11, 4]", "eat(5, 6, 10)", [11, 4]),
    ("split_words(txt)", 'split_words("Hello world!") ➞ ["Hello", "world!"]', "split_words('Hello world!')", ["Hello", "world!"]),
    ("multiply(a, b)", "multiply(148, 412) should return 16.", "multiply(148, 412)", 16),
    ("encrypt(s)", "encrypt('hi') returns 'lm'", "encrypt('hi')", "lm"),
    ("file_name_check(f)", 'file_name_check("example.txt") # => \'Yes\'', "file_name_check('example.txt')", "Yes"),
    ("is_simple_power(x, n)", "is_simple_power(3, 2) => false", "is_simple_power(3, 2)", False),
    ("sum_squares(lst)", "For lst = [1,2,3] the output should be 14", "sum_squares([1, 2, 3])", 14),
    ("reverse_delete(s, c)", 'For s = "abcde", c = "ae", the result should be (\'bcde\',False)', "reverse_delete('abcde', 'ae')", ("bcde", False)),
    ("maximum(arr, k)", "Input: arr = [-3, -4, 5], k = 3\n    Output: [-4, -3, 5]", "maximum([-3, -4, 5], 3)", [-4, -3, 5]),
    ("even_odd_palindrome(n)", "Input: 3\n    Output: (1, 2)", "even_odd_palindrome(3)", (1, 2)),
    ("count_nums(arr)", ">>> count_nums([-1, 11, -11]) == 1", "count_nums([-1, 11, -11])", 1),
    ("find_zero(xs)", ">>> round(find_zero([1, 2]), 2) # f(x) = 1 + 2x\n    -0.5", "round(find_zero([1, 2]), 2)", -0.5),
    ("longest(strings)", ">>> longest([])\n", "longest([])", None),
    ("get_row(lst, x)", "get_row([\n      [1, 2],\n      [2, 1]\n    ], 1) == [(0, 0), (1, 1)]", "get_row([[1, 2], [2, 1]], 1)", [(0, 0), (1, 1)]),
]
NOT_EXAMPLES = [
    ("double_the_difference(lst)", "double_the_difference([1, 3, 2, 0]) == 1 + 9 + 0 + 0 = 10"),
    ("is_happy(s)", "is_happy(a) => False"),
    ("sorted_list_sum(lst)", 'assert list_sort(["aa", "a", "aaa"]) => ["aa"]'),
    ("max_fill(grid, capacity)", "Input:\n        grid : [[0,1]]\n        bucket_capacity : 1\n    Output: 6"),
    ("next_smallest(lst)", "Write a function next_smallest() that returns the 2nd smallest element."),
]


def docstring_query(signature, line):
    return f'def {signature}:\n    """Task.\n    {line}\n    """\n'


@pytest.mark.parametrize("signature, line, call, expected", EXAMPLE_FORMS)
def test_examples_for_reads_the_forms_humaneval_docstrings_use(signature, line, call, expected):
    (example,) = examples_for(docstring_query(signature, line))
    assert example.call == call and example.expected == expected and type(example.expected) is type(expected)


@pytest.mark.parametrize("signature, line", NOT_EXAMPLES)
def test_examples_for_skips_what_is_not_a_literal_example(signature, line):
    assert examples_for(docstring_query(signature, line)) == []


DOCTEST_QUERY = '''
def running_max(xs: list, scale: float = 1.0) -> list:
    """Running maximum of xs, times scale.
    >>> running_max([1, 3, 2])
    [1, 3, 3]
    >>> running_max([0.1, 0.2], scale=3) == [0.30000000000000004, 0.6000000000000001]
    running_max([]) ➞ []
    For xs = [2, 1] the output should be [2, 2]
    """
'''
RUNNING_MAX = DOCTEST_QUERY + (
    "    out, best = [], None\n    for x in xs:\n        best = x if best is None else max(best, x)\n"
    "        out.append(best * scale)\n    return out\n"
)


@pytest.mark.slow
def test_doctest_forms_float_tolerance_and_failures_in_the_sandbox():
    assert len(examples_for(DOCTEST_QUERY)) == 4
    v = DoctestValidator(timeout=2)
    request = Request(DOCTEST_QUERY)
    ok, hangs, crashes, no_examples = v.check_pool(
        request,
        [
            Candidate(RUNNING_MAX.replace("best * scale", "round(best * scale, 12)")),
            Candidate(DOCTEST_QUERY + "    while True:\n        pass\n"),
            Candidate("import this_module_does_not_exist\n" + RUNNING_MAX),
            Candidate(RUNNING_MAX),
        ],
    )
    assert ok.passed, ok.message
    assert not hangs.passed and "timed out" in hangs.message
    assert not crashes.passed and crashes.message.startswith("the code fails when loaded: ModuleNotFoundError")
    assert no_examples.passed
    plain = v.check(Request("def double(x):\n    '''Double x.'''\n"), Candidate("def double(x):\n    return 2 * x\n"))
    assert plain.passed and plain.message.startswith("no examples found")


def test_same_value_compares_values_not_reprs():
    assert same_value(0.1 + 0.2, 0.3) and same_value([1, (2.0, "a")], [1, (2, "a")])
    assert not same_value([1, 2], (1, 2)) and not same_value({"a": 1}, {"a": 2}) and not same_value(1.0, 1.1)
    assert same_value(float("nan"), float("nan")) and same_value({1, 2}, {2, 1})


# --- regex and length --------------------------------------------------------------------------


def test_regex_must_match_and_must_not_match():
    assert check(RegexValidator(pattern=r"\b\d{4}-\d{2}-\d{2}\b"), "q", "Due 2024-05-01.").passed
    miss = check(RegexValidator(pattern=r"^yes", flags="i"), "q", "No.")
    assert not miss.passed and miss.message == "no match for /^yes/"
    assert check(RegexValidator(pattern=r"^yes", flags="i"), "q", "YES!").passed
    forbidden = check(RegexValidator(pattern=r"(?i)as an ai", must_match=False), "q", "As an AI, I can't.")
    assert not forbidden.passed and "'As an AI'" in forbidden.message
    assert check(RegexValidator(pattern="ü+", must_match=False), "q", "plain ascii").passed
    assert check(RegexValidator(), "q", "non-blank").passed and not check(RegexValidator(), "q", "   ").passed


def test_regex_bounds_input_and_refuses_bad_patterns():
    late = "a" * 50 + "needle"
    assert not check(RegexValidator(pattern="needle", max_chars=40), "q", late).passed
    assert check(RegexValidator(pattern="needle", max_chars=100), "q", late).passed
    with pytest.raises(ConfigError, match="does not compile"):
        RegexValidator(pattern="(unclosed")
    with pytest.raises(ConfigError, match="flag"):
        RegexValidator(pattern="x", flags="q")


def test_length_bounds_in_chars_and_words():
    assert check(LengthValidator(max_words=5), "q", "Une réponse courte.").passed
    long = check(LengthValidator(max_words=3), "q", "one two three four")
    assert not long.passed and long.message == "4 words; at most 3 allowed"
    assert check(LengthValidator(min_chars=3, max_chars=10), "q", "日本語のテキスト").passed
    assert check(LengthValidator(min_chars=1), "q", "").message == "0 characters; at least 1 required"
    assert not check(LengthValidator(min_words=2), "q", "single").passed
    with pytest.raises(ConfigError, match="greater than"):
        LengthValidator(min_words=5, max_words=2)
    with pytest.raises(ConfigError):
        LengthValidator(max_chars=-1)


# --- through the Reranker ----------------------------------------------------------------------


def test_reranker_ranks_a_failing_json_answer_below_a_passing_one():
    pool = [
        "Sure! Here is the person: name Ada, born 1815.",
        '{"name": "Ada Lovelace", "born": 1815}',
    ]
    ranking = Reranker(validators=["json"]).rank("Return Ada Lovelace as a JSON object", pool)
    assert ranking.best_index == 1
    assert [c.passed for c in ranking] == [True, False]
    assert "not JSON" in ranking.candidates[1].checks[0].message


def test_reranker_turns_on_tools_validation_for_tool_requests():
    request = {"query": "Forecast for Paris, 3 days", "tools": WEATHER}
    pool = [
        "[weather.get_forecast(city='Paris', days='three')]",
        '{"name": "weather_get_forecast", "arguments": {"city": "Paris", "days": 3}}',
    ]
    ranking = Reranker().rank(request, pool)
    assert ranking.best_index == 1 and ranking.best.passed and ranking.best.raw["tool-types"] == 1.0
    assert ranking.candidates[1].raw["tool-types"] == 0.0
    assert "argument types differ from the schema" in ranking.candidates[1].checks[0].message
    unknown = Reranker().rank(request, pool + ["get_weather(city='Paris')"])
    assert not unknown.candidates[-1].passed and unknown.candidates[-1].index == 2


def test_reranker_with_doctest_prefers_the_candidate_whose_examples_pass():
    pool = [BANKERS, AWAY_FROM_ZERO]
    ranking = Reranker(validators=[PythonValidator(), DoctestValidator(timeout=3)]).rank(CLOSEST_QUERY, pool)
    assert ranking.best_index == 1
    assert [c.validator for c in ranking.best.checks] == ["python", "python-doctest"]
    assert ranking.candidates[1].checks[1].passed is False
