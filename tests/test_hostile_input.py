"""Hostile input lines for `rerank score` and `rerank generate`: every attack of issue 12 is its
line's error line (or contained), the other lines are answered, and the output stays valid
UTF-8 JSON, one line per input line, in order. Property tests throw mixtures of them."""

import json
import os
import resource
import signal
import subprocess
import sys

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rerank.cli import main
from rerank.pool_lines import DEFAULT_MAX_CANDIDATES, score_line
from rerank.exits import EXIT_USAGE, EXIT_WRITE_FAILED
from rerank.jsonl import MAX_INT_DIGITS, MAX_NESTING, Line, json_depth, parse_line
from rerank.reranker import Reranker
from rerank.scorers.base import Validator
from rerank.testing import serve

GOOD = {"query": "capital of France?", "candidates": ["Paris is the capital of France.", "Bananas are yellow."]}
BOMB = "^(a+)+$"
EVIL = "a" * 40 + "!"  # a backtracking engine needs about 2**40 steps to give up on it
QUOTES = '\\"' * 40_000  # 80 KB of escaped quotes


def good(line_id):
    return json.dumps({"id": line_id, **GOOD}).encode()


def strict_json(raw: bytes):
    """One output line read as RFC 8259 JSON: UTF-8, no NaN, no lone surrogate."""
    def no_constant(name):
        raise ValueError(f"{name} is not JSON")
    value = json.loads(raw.decode("utf-8"), parse_constant=no_constant)
    json.dumps(value, ensure_ascii=False).encode("utf-8")  # a lone surrogate would raise here
    return value


def score(lines, *args, runner=None):
    """`rerank score` in-process over these raw lines; the result and its output lines, parsed strictly."""
    result = (runner or CliRunner()).invoke(main, ["score", "-", "-q", *args], input=b"\n".join(lines) + b"\n")
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.exc_info
    out = [strict_json(raw) for raw in result.stdout_bytes.splitlines()]
    return result, out


def assert_one_line_each(lines, out, ids):
    """One output line per input line, in order: line N's output is its error line or has its id."""
    assert len(out) == len(lines)
    for number, (line_id, o) in enumerate(zip(ids, out), 1):
        assert o.get("line") == number or (line_id is not None and o.get("id") == line_id), (number, o)


def scored_around(middle: bytes, *args):
    """A good line, ``middle``, a good line: the good ones are ranked, ``middle``'s result returned."""
    result, out = score([good("before"), middle, good("after")], *args)
    assert [o.get("id") for o in (out[0], out[2])] == ["before", "after"]
    assert "error" not in out[0] and "error" not in out[2] and out[2]["best_index"] == 0
    return result, out[1]


# --- parsing -----------------------------------------------------------------------------------


def test_a_lone_surrogate_is_its_lines_error_and_the_model_never_sees_it():
    line = b'{"id":"b","query":"q","candidates":["x\\ud800","y"]}'
    result, out = scored_around(line)  # default scorers: the embedding tokenizer would raise on it
    assert result.exit_code == 1
    assert out["id"] == "b" and out["line"] == 2
    assert "$.candidates[0]" in out["error"] and "lone surrogate" in out["error"]


def test_an_integer_over_the_digit_limit_is_its_lines_error():
    line = b'{"id":"big","query":"q","candidates":["a","b"],"n":' + b"9" * (MAX_INT_DIGITS + 700) + b"}"
    result, out = scored_around(line, "--scorer", "bm25")
    assert out["id"] == "big" and "$.n" in out["error"] and f"{MAX_INT_DIGITS + 700:,} digits" in out["error"]


@pytest.mark.parametrize("token, written", [("NaN", "NaN"), ("Infinity", "Infinity"), ("-Infinity", "-Infinity"),
                                            ("1e999", "1e999")])
def test_an_id_json_cannot_hold_is_replaced_and_said_so(token, written):
    line = b'{"id":' + token.encode() + b',"query":"q","candidates":["a","b"]}'
    _, out = scored_around(line, "--scorer", "bm25")
    assert out["id"] == written and out["line"] == 2 and "$.id" in out["error"]
    assert out["replaced"] and "the id" in out["replaced"][0]


def test_an_id_with_a_lone_surrogate_is_written_as_its_escape_text():
    _, out = scored_around(b'{"id":"x\\udc00","query":"q","candidates":["a"]}', "--scorer", "bm25")
    assert out["id"] == "x\\udc00" and "lone surrogate" in out["replaced"][0]


# --- time and size budgets ---------------------------------------------------------------------


def schema_line(line_id, schema, candidates):
    return json.dumps({"id": line_id, "query": "q", "schema": schema, "candidates": candidates}).encode()


def verdicts(out, validator):
    return [next(c["passed"] for c in cand["checks"] if c["validator"] == validator) for cand in out["candidates"]]


def test_a_regex_bomb_in_a_schema_pattern_runs_in_linear_time():
    schema = {"type": "object", "properties": {"s": {"type": "string", "pattern": BOMB}}}
    _, out = scored_around(schema_line("p", schema, [json.dumps({"s": EVIL}), json.dumps({"s": "aaa"})]),
                           "--scorer", "bm25")
    assert verdicts(out, "json-schema") == [False, True] and out["best_index"] == 1


def test_a_regex_bomb_in_pattern_properties_runs_in_linear_time():
    schema = {"type": "object", "patternProperties": {BOMB: {"type": "integer"}}, "additionalProperties": False}
    candidates = [json.dumps({EVIL: 1}), json.dumps({"aaa": 1}), json.dumps({"aaa": "not an integer"})]
    _, out = scored_around(schema_line("pp", schema, candidates), "--scorer", "bm25")
    assert verdicts(out, "json-schema") == [False, True, False]


def test_a_regex_bomb_in_property_names_runs_in_linear_time():
    schema = {"type": "object", "propertyNames": {"pattern": BOMB}}
    _, out = scored_around(schema_line("pn", schema, [json.dumps({EVIL: 1}), json.dumps({"aaa": 1})]),
                           "--scorer", "bm25")
    assert verdicts(out, "json-schema") == [False, True]


def test_a_regex_bomb_in_a_tool_schema_runs_in_linear_time():
    tools = [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"s": {"type": "string", "pattern": BOMB}}, "required": ["s"]}}}]
    calls = [{"content": None, "tool_calls": [{"id": f"c{i}", "type": "function",
                                               "function": {"name": "f", "arguments": json.dumps({"s": s})}}]}
             for i, s in enumerate([EVIL, "aaa"])]
    line = json.dumps({"id": "t", "query": "q", "tools": tools, "candidates": calls}).encode()
    _, out = scored_around(line, "--scorer", "bm25")
    assert verdicts(out, "tools") == [False, True] and out["best_index"] == 1


def test_a_pattern_re2_cannot_run_is_its_lines_error():
    schema = {"type": "string", "pattern": "^(?=.*[0-9]).{8,}$"}  # lookahead: no linear-time engine runs it
    _, out = scored_around(schema_line("la", schema, ['"abcdefgh1"']), "--scorer", "bm25")
    assert out["id"] == "la" and "RE2" in out["error"] and "lookaround" in out["error"]


def test_forty_thousand_escaped_quotes_as_a_line_are_read_in_linear_time():
    _, out = scored_around(QUOTES.encode(), "--scorer", "bm25")
    assert out["line"] == 2 and "not valid JSON" in out["error"]
    assert json_depth("[" + QUOTES) == 1 and json_depth('["' + QUOTES + '"]') == 1


def test_json_nested_to_the_limit_is_read_one_level_more_is_refused_and_brackets_in_strings_do_not_count():
    def nested(levels):  # an object holding arrays: `levels` deep in all
        return ('{"x": ' + "[" * (levels - 1) + "]" * (levels - 1) + "}").encode()

    assert parse_line(nested(MAX_NESTING), 1).value is not None
    refused = parse_line(nested(MAX_NESTING + 1), 1)
    assert refused.value is None and f"deeper than {MAX_NESTING} levels" in refused.error
    many = parse_line(json.dumps({"x": "[{" * (2 * MAX_NESTING), "y": [[1]]}).encode(), 1)
    assert many.value == {"x": "[{" * (2 * MAX_NESTING), "y": [[1]]}


def test_forty_thousand_escaped_quotes_as_a_json_candidate():
    line = schema_line("qj", {"type": "string"}, [QUOTES, '"fine"'])  # the json profile
    _, out = scored_around(line)
    assert out["profile"] == "json" and verdicts(out, "json-schema") == [False, True] and out["best_index"] == 1


def test_forty_thousand_escaped_quotes_as_tool_call_text():
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]
    line = json.dumps({"id": "qt", "query": "q", "tools": tools,
                       "candidates": ["[" + QUOTES, 'f()']}).encode()
    _, out = scored_around(line, "--scorer", "bm25")
    messages = [next(c["message"] for c in cand["checks"] if c["validator"] == "tools") for cand in out["candidates"]]
    assert messages == ["no tool call: the answer is text only", "1 valid call to f"]


def test_a_pool_above_max_candidates_is_its_lines_error():
    huge = json.dumps({"id": "huge", "query": "q", "candidates": [f"answer {i}" for i in range(10_000)]}).encode()
    _, out = scored_around(huge, "--scorer", "bm25")
    assert out["id"] == "huge" and f"at most {DEFAULT_MAX_CANDIDATES}" in out["error"]
    three = json.dumps({"id": "three", "query": "q", "candidates": ["a", "b", "c"]}).encode()
    _, out = scored_around(three, "--scorer", "bm25", "--max-candidates", "2")
    assert "3 candidates; at most 2" in out["error"]


# --- scoring -----------------------------------------------------------------------------------


class Explodes(Validator):
    """A validator that raises on one candidate, as a buggy plugin would."""

    name = "explodes"

    def check(self, request, candidate):
        if candidate.content == "boom":
            raise ZeroDivisionError("the plugin divided by zero")
        return self.passed()


def test_an_exception_inside_a_validator_is_that_lines_error():
    reranker = Reranker(scorers=["bm25"], validators=[Explodes()])
    lines = [Line(1, {"id": "a", "query": "q", "candidates": ["x", "y"]}),
             Line(2, {"id": "b", "query": "q", "candidates": ["x", "boom"]}),
             Line(3, {"id": "c", "query": "q", "candidates": ["y", "x"]})]
    out = [score_line(reranker, line) for line in lines]
    assert "error" not in out[0] and "error" not in out[2]
    assert out[1] == {"id": "b", "line": 2, "error": "ZeroDivisionError: the plugin divided by zero"}


# --- writing -----------------------------------------------------------------------------------


def write_rows(path, count):
    path.write_bytes(b"".join(good(f"g{i}") + b"\n" for i in range(count)))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("how", ["same path", "symlink", "hard link", "stdout"])
def test_the_output_is_never_the_input(tmp_path, how):
    source = write_rows(tmp_path / "in.jsonl", 600)
    before = source.read_bytes()
    if how == "stdout":
        with open(source, "rb") as stdin, open(source, "ab") as stdout:
            result = subprocess.run([sys.executable, "-m", "rerank.cli", "score", "-", "-q", "--scorer", "bm25"],
                                    stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=120)
        code, message = result.returncode, result.stderr
    else:
        target = {"same path": source, "symlink": tmp_path / "link.jsonl", "hard link": tmp_path / "hard.jsonl"}[how]
        if how == "symlink":
            target.symlink_to(source)
        elif how == "hard link":
            os.link(source, target)
        result = CliRunner().invoke(main, ["score", str(source), "-o", str(target), "-q", "--scorer", "bm25"])
        code, message = result.exit_code, result.output
    assert code == EXIT_USAGE and "is the input file" in message
    assert source.read_bytes() == before


@pytest.mark.slow
def test_a_missing_output_directory_fails_before_reading_any_input(tmp_path):
    # stdin stays open and empty: a run that read its input first would wait forever
    proc = subprocess.Popen([sys.executable, "-m", "rerank.cli", "score", "-", "-o", str(tmp_path / "no" / "out.jsonl"),
                             "-q", "--scorer", "bm25"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == EXIT_USAGE and "cannot write" in stderr and "No such file or directory" in stderr


@pytest.mark.slow
def test_a_full_device_has_its_own_exit_code_and_message(tmp_path):
    source = write_rows(tmp_path / "in.jsonl", 3)
    result = subprocess.run([sys.executable, "-m", "rerank.cli", "score", str(source), "-o", "/dev/full", "-q",
                             "--scorer", "bm25"], capture_output=True, text=True, timeout=120)
    assert result.returncode == EXIT_WRITE_FAILED
    assert "no space left" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_a_file_size_limit_midway_leaves_only_whole_lines(tmp_path):
    source, output = write_rows(tmp_path / "in.jsonl", 40), tmp_path / "out.jsonl"

    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (8_000, 8_000))

    result = subprocess.run([sys.executable, "-m", "rerank.cli", "score", str(source), "-o", str(output), "-q",
                             "--scorer", "bm25"], capture_output=True, text=True, timeout=120,
                            preexec_fn=limit_file_size)
    assert result.returncode == EXIT_WRITE_FAILED and "no space left" in result.stderr
    text = output.read_bytes()
    assert text.endswith(b"\n") and 0 < text.count(b"\n") < 40
    assert [strict_json(raw)["id"] for raw in text.splitlines()] == [f"g{i}" for i in range(text.count(b"\n"))]


@pytest.mark.slow
def test_an_unusable_embedding_model_is_one_clear_error_line():
    result = subprocess.run([sys.executable, "-m", "rerank.cli", "score", "-", "--embedding-model", "/tmp"],
                            input="", capture_output=True, text=True, timeout=240)
    assert result.returncode == EXIT_USAGE
    assert result.stderr.strip().splitlines()[-1].startswith("Error: could not load embedding model '/tmp'")
    assert "Traceback" not in result.stderr and "Usage:" not in result.stderr


# --- property: any mixture of hostile lines ----------------------------------------------------


def hostile_line(line_id: str) -> st.SearchStrategy[bytes]:
    """One input line (no newline) from the attacks above, or random bytes or JSON."""
    text = st.text(max_size=30)
    return st.one_of(
        st.just(good(line_id)),
        text.map(lambda t: json.dumps({"id": line_id, "query": t, "candidates": [t, "Paris."]}).encode()),
        st.just(b'{"id":"%s","query":"q","candidates":["x\\ud800","y"]}' % line_id.encode()),
        st.integers(MAX_INT_DIGITS + 1, MAX_INT_DIGITS + 50).map(
            lambda n: b'{"id":"%s","candidates":["a"],"n":%s}' % (line_id.encode(), b"7" * n)),
        st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"1e999"]).map(
            lambda c: b'{"id":%s,"candidates":["a","b"]}' % c),
        st.sampled_from([b"NaN", b"Infinity", b"1e400"]).map(
            lambda c: b'{"id":"%s","query":"q","candidates":["a"],"x":%s}' % (line_id.encode(), c)),
        st.just(schema_line(line_id, {"type": "string", "pattern": BOMB}, [json.dumps(EVIL), '"aa"'])),
        st.just(schema_line(line_id, {"type": "object", "patternProperties": {BOMB: {}}, "additionalProperties": False},
                            [json.dumps({EVIL: 1})])),
        st.integers(1, 3).map(lambda k: QUOTES[: k * 20_000].encode()),
        st.integers(60, 200).map(lambda d: b"[" * d + b"]" * d),
        st.just(json.dumps({"id": line_id, "query": "q", "candidates": ["c"] * (DEFAULT_MAX_CANDIDATES + 1)}).encode()),
        st.binary(max_size=40).map(lambda b: b.replace(b"\n", b" ")),
        st.recursive(st.none() | st.booleans() | st.integers() | text, lambda kids: st.lists(kids, max_size=3)
                     | st.dictionaries(text, kids, max_size=3), max_leaves=8).map(lambda v: json.dumps(v).encode()),
        st.just(b""),
    )


@st.composite
def hostile_files(draw):
    count = draw(st.integers(1, 6))
    ids = [f"L{i}" for i in range(count)]
    return [draw(hostile_line(line_id)) for line_id in ids], ids


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(hostile_files())
def test_score_answers_every_hostile_line_with_one_valid_json_line_in_order(file):
    lines, ids = file
    result, out = score(lines, "--scorer", "bm25")
    assert result.exit_code in (0, 1)
    assert_one_line_each(lines, out, ids)


# --- rerank generate ---------------------------------------------------------------------------

CHAT = "/v1/chat/completions"
POOLS = [{"query": f"question {i}", "candidates": [f"answer {i} one", f"answer {i} two"]} for i in range(4)]


def request(custom_id, i):
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": CHAT,
                       "body": {"model": "m", "messages": [{"role": "user", "content": f"question {i}"}]}}).encode()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    pools = tmp_path_factory.mktemp("pools") / "pools.jsonl"
    pools.write_text("".join(json.dumps(p) + "\n" for p in POOLS))
    with serve(pools=pools) as running:
        yield running


def generate(server, source, output, *args, base_url=None):
    result = CliRunner().invoke(main, ["generate", str(source), "-o", str(output), "--base-url",
                                       base_url or server.base_url, "-n", "2", "--scorer", "bm25", "-q", *args])
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.exc_info
    return result


def outcomes(path):
    return [(o["custom_id"], (o["error"] or {}).get("code")) for o in map(strict_json, path.read_bytes().splitlines())]


def test_generate_an_over_long_integer_line_is_its_error_line_and_resume_moves_past_it(server, tmp_path):
    source = tmp_path / "in.jsonl"
    big = b'{"custom_id":"big","method":"POST","url":"%s","body":{"model":"m","max_tokens":%s}}' % (
        CHAT.encode(), b"9" * 5000)
    source.write_bytes(b"\n".join([request("a", 0), big, request("c", 2)]) + b"\n")
    output = tmp_path / "out.jsonl"
    result = generate(server, source, output)
    assert result.exit_code == 1
    assert sorted(outcomes(output), key=str) == sorted([("a", None), (None, "invalid_line"), ("c", None)], key=str)
    resumed = generate(server, source, output, "--resume")
    assert resumed.exit_code == 1  # the line still cannot run: its error line again, once
    assert sorted(outcomes(output), key=str) == sorted([("a", None), (None, "invalid_line"), ("c", None)], key=str)


def test_generate_a_repeated_custom_id_runs_once_and_the_repeat_has_a_null_id(server, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"\n".join([request("a", 0), request("a", 1), request("c", 2)]) + b"\n")
    output = tmp_path / "out.jsonl"
    generate(server, source, output)
    lines = list(map(strict_json, output.read_bytes().splitlines()))
    assert sorted(outcomes(output), key=str) == sorted([("a", None), (None, "duplicate_custom_id"), ("c", None)], key=str)
    answer = next(o for o in lines if o["custom_id"] == "a")
    assert answer["response"]["body"]["choices"][0]["message"]["content"].startswith("answer 0")
    duplicate = next(o for o in lines if o["custom_id"] is None)
    assert duplicate["error"]["line"] == 2 and "'a' of line 1" in duplicate["error"]["message"]


def test_generate_resume_retries_the_lines_that_failed(server, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"\n".join([request(f"p{i}", i) for i in range(3)]) + b"\n")
    output = tmp_path / "out.jsonl"
    down = generate(server, source, output, "--max-retries", "0", base_url="http://127.0.0.1:9/v1")
    assert down.exit_code == 1 and {code for _, code in outcomes(output)} == {"connection_error"}
    resumed = generate(server, source, output, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert sorted(outcomes(output)) == [("p0", None), ("p1", None), ("p2", None)]


def test_generate_refuses_its_input_as_output_even_with_overwrite(server, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"\n".join([request(f"p{i}", i) for i in range(3)]) + b"\n")
    before = source.read_bytes()
    (tmp_path / "link.jsonl").symlink_to(source)
    for target in (source, tmp_path / "link.jsonl"):
        result = generate(server, source, target, "--overwrite")
        assert result.exit_code == EXIT_USAGE and "is the input file" in result.output
    assert source.read_bytes() == before


@pytest.mark.slow
def test_generate_on_a_full_device_exits_3_with_the_resume_command(server, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_bytes(request("p0", 0) + b"\n")
    result = subprocess.run([sys.executable, "-m", "rerank.cli", "generate", str(source), "-o", "/dev/full",
                             "--base-url", server.base_url, "-n", "2", "--scorer", "bm25", "-q"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == EXIT_WRITE_FAILED
    assert "no space left" in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].strip().endswith("--resume")


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                                 HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(st.integers(0, 3).map(lambda i: ("ok", i)),
                          st.sampled_from([b"NaN", b"1e999", b"7" * 4400]).map(lambda c: ("bad", c)),
                          st.just(("surrogate", None)), st.just(("dup", None)), st.binary(max_size=20).map(
                              lambda b: ("junk", b.replace(b"\n", b" ") or b"x"))), min_size=1, max_size=6))
def test_generate_answers_every_hostile_line_once(server, tmp_path_factory, kinds):
    lines = []
    for number, (kind, value) in enumerate(kinds, 1):
        if kind == "ok":
            lines.append(request(f"id{number}", value))
        elif kind == "bad":
            lines.append(b'{"custom_id":"id%d","method":"POST","url":"%s","body":{"model":"m","temperature":%s}}'
                         % (number, CHAT.encode(), value))
        elif kind == "surrogate":
            lines.append(b'{"custom_id":"id%d\\ud800","method":"POST","url":"%s","body":{}}' % (number, CHAT.encode()))
        elif kind == "dup":
            lines.append(request("dup", 0))
        else:
            lines.append(value)
    tmp = tmp_path_factory.mktemp("hostile")
    source, output = tmp / "in.jsonl", tmp / "out.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")
    result = generate(server, source, output)
    assert result.exit_code in (0, 1), result.output
    out = list(map(strict_json, output.read_bytes().splitlines()))
    blank = sum(1 for line in lines if not line.strip())
    assert len(out) == len(lines) - blank  # a blank line holds no request
    ids = [o["custom_id"] for o in out if o["custom_id"] is not None]
    assert len(ids) == len(set(ids))
    first_dup = next((n for n, (kind, _) in enumerate(kinds, 1) if kind == "dup"), None)
    line_of = {f"id{n}": n for n in range(1, len(lines) + 1)} | {"dup": first_dup}
    numbers = sorted([o["error"]["line"] for o in out if o["error"] and "line" in o["error"]]
                     + [line_of[o["custom_id"]] for o in out if o["custom_id"] is not None and o["error"] is None])
    assert numbers == [n for n, line in enumerate(lines, 1) if line.strip()]
