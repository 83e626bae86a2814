"""`rerank generate` as a subprocess against rerank.testing serving benchmark pools.

The server answers each request with the candidates of the pool whose query is the request's
last user message, so `rerank score` on the same pools must pick what `rerank generate` picked.
"""

import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest
from click.testing import CliRunner

from conftest import read_pools
from rerank.batch import read_answered, resume_command
from rerank.cli import main
from rerank.testing import Fault, serve

CHAT, RESPONSES = "/v1/chat/completions", "/v1/responses"


def write_jsonl(path, rows):
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


def batch_line(custom_id, pool, url=CHAT, **extra):
    query = pool["query"]
    body = {"model": "test-model", **extra}
    if url == CHAT:
        body["messages"] = [{"role": "user", "content": query}]
        if pool.get("tools"):
            body["tools"] = pool["tools"]
    else:
        body["input"] = query
        if pool.get("tools"):
            body["tools"] = [{"type": "function", **t["function"]} for t in pool["tools"]]
    return {"custom_id": custom_id, "method": "POST", "url": url, "body": body}


def environment():
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def command(*args):
    return [sys.executable, "-m", "rerank.cli", *args]


def run_cli(*args, input=None):
    return subprocess.run(command(*args), input=input, capture_output=True, text=True, env=environment(),
                          timeout=240)


def output_lines(path):
    text = path.read_text()
    assert text == "" or text.endswith("\n"), "the output must end with a whole line"
    return [json.loads(line) for line in text.splitlines()]


def requests_for(server, query):
    found = []
    for r in server.requests:
        body = r.body or {}
        messages = body.get("messages") or [{"content": body.get("input")}]
        if messages[-1].get("content") == query:
            found.append(r)
    return found


# --- one full run on real pools, with malformed lines among the good ones ---------------------


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """Generate over 3 bfcl + 3 alpaca_eval pools (chat) and one more alpaca_eval pool (Responses
    API), mixed with lines that cannot run; then `rerank score` over the same pools."""
    tmp = tmp_path_factory.mktemp("generate")
    alpaca = sorted(read_pools("alpaca_eval", 12), key=lambda p: len(json.dumps(p)))[:4]  # short ones: fast
    chat_pools = read_pools("bfcl", 3) + alpaca[:3]
    responses_pool = alpaca[3]
    pools = chat_pools + [responses_pool]
    pools_file = write_jsonl(tmp / "pools.jsonl", pools)
    rows = [batch_line(p["id"], p) for p in chat_pools[:3]]
    rows += [
        "{not json",
        {"custom_id": "bad-url", "method": "POST", "url": "/v1/embeddings", "body": {"model": "m", "input": "x"}},
        {"custom_id": "no-body", "method": "POST", "url": CHAT},
        {"method": "POST", "url": CHAT, "body": {"model": "m", "messages": []}},
        batch_line(chat_pools[0]["id"], chat_pools[1]),  # a repeated custom_id
    ]
    rows += [batch_line(p["id"], p) for p in chat_pools[3:]]
    rows += [batch_line(responses_pool["id"], responses_pool, url=RESPONSES)]
    rows += [""]  # a trailing blank line holds no request
    input_file = write_jsonl(tmp / "requests.jsonl", rows)
    output = tmp / "answers.jsonl"
    score_input = write_jsonl(tmp / "score.jsonl", [
        {"id": p["id"], "query": p["query"], "context": p["context"], "tools": p.get("tools"),
         "candidates": p["candidates"]} for p in pools])
    scoring = subprocess.Popen(command("score", str(score_input), "-q"), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=environment())  # meanwhile
    with serve(pools=pools_file, n_mode="honour") as server:
        result = run_cli("generate", str(input_file), "-o", str(output), "--base-url", server.base_url,
                         "-n", "8", "-j", "3")
        generation_requests = server.generation_requests
    scores, errors = scoring.communicate(timeout=240)
    assert scoring.returncode == 0, errors
    return {
        "result": result, "out": output_lines(output),
        "scores": {s["id"]: s for s in map(json.loads, scores.splitlines())},
        "chat_ids": [p["id"] for p in chat_pools], "responses_id": responses_pool["id"],
        "generation_requests": generation_requests,
    }


def answers_by_id(out):
    return {o["custom_id"]: o for o in out if o["error"] is None}


@pytest.mark.slow
def test_picks_match_rerank_score_on_the_same_candidates(full_run):
    answers = answers_by_id(full_run["out"])
    assert set(answers) == set(full_run["chat_ids"]) | {full_run["responses_id"]}
    for custom_id in full_run["chat_ids"]:
        answer, score = answers[custom_id], full_run["scores"][custom_id]
        assert answer["response"]["status_code"] == 200
        body = answer["response"]["body"]
        assert body["object"] == "chat.completion" and len(body["choices"]) == 1
        ranking = body["rerank"]
        assert len(ranking["candidates"]) == 8 and ranking["failures"] == []
        assert ranking["best_index"] == score["best_index"], custom_id
        assert ranking["profile"] == score["profile"]
        message = body["choices"][0]["message"]
        assert message["content"] == score["best"]["content"]
        calls = [(c["function"]["name"], c["function"]["arguments"]) for c in message.get("tool_calls") or []]
        expected = [(c["function"]["name"], c["function"]["arguments"]) for c in score["best"].get("tool_calls") or []]
        assert calls == expected
    # Responses API candidates arrive in completion order: compare the chosen text.
    body = answers[full_run["responses_id"]]["response"]["body"]
    assert body["object"] == "response" and len(body["rerank"]["candidates"]) == 8
    text = "".join(part["text"] for item in body["output"] if item["type"] == "message" for part in item["content"])
    assert text == full_run["scores"][full_run["responses_id"]]["best"]["content"]


@pytest.mark.slow
def test_malformed_lines_get_error_lines_while_the_rest_run(full_run):
    result, out = full_run["result"], full_run["out"]
    assert result.returncode == 1, result.stderr
    errors = sorted((o for o in out if o["error"] is not None), key=lambda e: e["error"]["line"])
    assert [(e["custom_id"], e["error"]["code"], e["error"]["line"]) for e in errors] == [
        (None, "invalid_line", 4),
        ("bad-url", "invalid_url", 5),
        ("no-body", "missing_body", 6),
        (None, "missing_custom_id", 7),
        (None, "duplicate_custom_id", 8),  # the repeat's custom_id is null: the id names one request
    ]
    assert all(e["response"] is None and e["error"]["message"] for e in errors)
    assert "not valid JSON" in errors[0]["error"]["message"]
    assert "/v1/chat/completions or /v1/responses" in errors[1]["error"]["message"]
    # Every good line ran once, and nothing was sent for the bad ones: one request with n=8 per
    # chat line, eight single requests for the Responses API line (it has no n).
    assert full_run["generation_requests"] == len(full_run["chat_ids"]) + 8
    assert len(out) == len(full_run["chat_ids"]) + 1 + len(errors)
    assert len({o["id"] for o in out}) == len(out)


@pytest.mark.slow
def test_progress_goes_to_stderr_and_output_lines_to_the_file(full_run):
    result = full_run["result"]
    assert result.stdout == ""
    assert "generate: " in result.stderr and "/s" in result.stderr
    assert not any(line.startswith("{") for line in result.stderr.splitlines())


# --- upstream failures: retries, then error lines ---------------------------------------------


@pytest.mark.slow
def test_a_failing_server_is_retried_then_gives_error_lines(tmp_path):
    pools = read_pools("bfcl", 5)
    pools_file = write_jsonl(tmp_path / "pools.jsonl", pools)
    broken, flaky = pools[0]["query"], pools[1]["query"]
    seen_flaky, lock = [], threading.Lock()

    def query(body):
        return (body.get("messages") or [{}])[-1].get("content")

    def first_flaky_request(body):
        with lock:
            if query(body) != flaky or seen_flaky:
                return False
            seen_flaky.append(body)
            return True

    faults = [Fault(status=500, when=lambda body: query(body) == broken),
              Fault(status=503, when=first_flaky_request)]
    stdin = "".join(json.dumps(batch_line(p["id"], p)) + "\n" for p in pools)
    with serve(pools=pools_file, faults=faults) as server:
        result = run_cli("generate", "-", "-o", "-", "--base-url", server.base_url, "-n", "2",
                         "--max-retries", "2", "--scorer", "bm25", input=stdin)
        broken_tries = len(requests_for(server, broken))
        flaky_tries = len(requests_for(server, flaky))
        other_tries = [len(requests_for(server, p["query"])) for p in pools[2:]]
    assert result.returncode == 1, result.stderr
    out = [json.loads(line) for line in result.stdout.splitlines()]  # stdout holds only output lines
    by_id = {o["custom_id"]: o for o in out}
    assert len(out) == len(pools) and set(by_id) == {p["id"] for p in pools}
    failed = by_id[pools[0]["id"]]
    assert failed["response"]["status_code"] == 500
    assert "injected error 500" in failed["response"]["body"]["error"]["message"]
    assert "HTTP 500" in failed["error"]["message"] and "after 2 retries" in failed["error"]["message"]
    assert broken_tries == 3  # the first try and two retries
    assert flaky_tries == 2 and by_id[pools[1]["id"]]["error"] is None
    assert other_tries == [1, 1, 1]
    assert all(by_id[p["id"]]["response"]["body"]["rerank"]["candidates"] for p in pools[1:])
    assert "generate: 5, 1 failed" in result.stderr  # stdin: a count without a total


# --- interrupted runs -------------------------------------------------------------------------


@pytest.fixture
def slow_batch(tmp_path):
    """A server answering 20 bfcl pools slowly, and the input asking for each of them once."""
    pools = read_pools("bfcl", 20)
    pools_file = write_jsonl(tmp_path / "pools.jsonl", pools)
    input_file = write_jsonl(tmp_path / "requests.jsonl", [batch_line(p["id"], p) for p in pools])
    with serve(pools=pools_file, latency=0.3) as server:
        yield server, input_file, [p["id"] for p in pools], [p["query"] for p in pools]


def start_until(args, output, lines):
    """Start `rerank generate` and return it once ``output`` holds at least ``lines`` lines."""
    proc = subprocess.Popen(command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=environment())
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        if output.exists() and output.read_bytes().count(b"\n") >= lines:
            return proc
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"the run ended or stalled before writing {lines} lines: {proc.communicate()[1]}")


@pytest.mark.slow
def test_a_run_killed_with_sigkill_and_resumed_holds_every_custom_id_once(slow_batch, tmp_path):
    server, input_file, ids, queries = slow_batch
    output = tmp_path / "answers.jsonl"
    args = ["generate", str(input_file), "-o", str(output), "--base-url", server.base_url, "-n", "2",
            "-j", "2", "--scorer", "bm25", "-q"]
    proc = start_until(args, output, 3)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    before = output_lines(output)
    assert 3 <= len(before) < len(ids)
    with open(output, "ab") as f:  # as if killed halfway through writing a line
        f.write(b'{"id":"batch_req_torn","custom_id":"' + ids[-1].encode())
    server.latency = 0.0
    start = len(server.requests)
    resumed = run_cli(*args[:-1], "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "torn last line" in resumed.stderr and "resuming: " in resumed.stderr
    after = output_lines(output)
    assert after[: len(before)] == before  # appended, nothing rewritten
    assert Counter(o["custom_id"] for o in after) == Counter(ids)
    assert all(o["error"] is None and o["response"]["body"]["rerank"] for o in after)
    # The resumed run asked again for exactly the lines that had no answer yet.
    query_of = {p_id: q for p_id, q in zip(ids, queries)}
    asked = {r.body["messages"][-1]["content"] for r in server.requests[start:]}
    assert asked == {query_of[i] for i in ids} - {query_of[o["custom_id"]] for o in before}


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_says_how_to_resume(slow_batch, tmp_path):
    server, input_file, ids, _ = slow_batch
    output = tmp_path / "answers.jsonl"
    proc = start_until(["generate", str(input_file), "-o", str(output), "--base-url", server.base_url,
                        "-n", "2", "-j", "2", "--scorer", "bm25"], output, 2)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr
    before = output_lines(output)
    assert len(before) < len(ids) and len({o["custom_id"] for o in before}) == len(before)
    hint = stderr.strip().splitlines()[-1].strip()
    assert hint.startswith("rerank generate ") and hint.endswith("--resume")
    server.latency = 0.0
    resumed = run_cli(*shlex.split(hint)[1:])
    assert resumed.returncode == 0, resumed.stderr
    after = output_lines(output)
    assert Counter(o["custom_id"] for o in after) == Counter(ids)


# --- usage errors and the pieces behind --resume ----------------------------------------------


@pytest.mark.parametrize("args, fragment", [
    (["--resume", "-o", "-"], "--resume needs -o FILE"),
    (["-o", "{existing}"], "--resume to continue"),
    (["-o", "{existing}", "--resume", "--overwrite"], "give one of them"),
    (["-o", "{damaged}", "--resume"], "line 1 is damaged"),
    (["-n", "0"], "-n"),
    (["--validator", "no-such-validator"], "no-such-validator"),
])
def test_usage_errors_exit_2(tmp_path, args, fragment):
    existing = write_jsonl(tmp_path / "existing.jsonl", [{"id": "x", "custom_id": "a", "response": None, "error": None}])
    damaged = write_jsonl(tmp_path / "damaged.jsonl", ["{half a line", {"custom_id": "a", "error": None}])
    source = write_jsonl(tmp_path / "in.jsonl", [])
    args = [a.format(existing=existing, damaged=damaged) for a in args]
    result = CliRunner().invoke(main, ["generate", str(source), "--base-url", "http://127.0.0.1:9/v1", *args])
    assert result.exit_code == 2, result.output
    assert fragment in result.output


def test_no_api_key_and_no_base_url_is_a_usage_error(tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", [])
    result = CliRunner().invoke(main, ["generate", str(source)],
                                env={"OPENAI_API_KEY": None, "OPENAI_BASE_URL": None})
    assert result.exit_code == 2 and "OPENAI_API_KEY" in result.output


def test_resume_completes_a_whole_last_line_that_lost_its_newline(tmp_path):
    path = tmp_path / "answers.jsonl"
    path.write_text('{"id":"1","custom_id":"a","response":null,"error":null}\n'
                    '{"id":"2","custom_id":"b","response":null,"error":null}')
    answered = read_answered(path)
    assert path.read_text().endswith("}\n") and len(path.read_text().splitlines()) == 2
    assert answered.custom_ids == {"a", "b"} and answered.retried == 0


def test_resume_takes_the_error_lines_out_so_that_they_run_again(tmp_path):
    path = tmp_path / "answers.jsonl"
    kept = '{"id":"1","custom_id":"a","response":null,"error":null}\n'
    path.write_text(kept + '{"id":"2","custom_id":"b","response":null,"error":{"code":"timeout","message":"m"}}\n'
                    '{"id":"3","custom_id":null,"response":null,"error":{"code":"invalid_url","message":"m","line":3}}\n')
    answered = read_answered(path)
    assert answered.custom_ids == {"a"} and answered.retried == 2
    assert path.read_text() == kept and [p.name for p in tmp_path.iterdir()] == ["answers.jsonl"]


def test_the_resume_hint_never_shows_the_api_key():
    hint = resume_command(["generate", "in put.jsonl", "-o", "out.jsonl", "--api-key", "sk-secret", "--overwrite"])
    assert "sk-secret" not in hint and "--overwrite" not in hint
    assert shlex.split(hint)[:4] == ["rerank", "generate", "in put.jsonl", "-o"] and "--resume" in hint


def test_generate_choices_of_top_up_and_settle_are_the_libraries_own():
    # the CLI spells them out so that `rerank --help` imports neither module; they must not drift
    import click

    from rerank.adaptive import TOP_UPS
    from rerank.agreement import SETTLE_RULES
    from rerank.cli import generate

    choices = {p.name: tuple(p.type.choices) for p in generate.params if isinstance(p.type, click.Choice)}
    assert choices["top_up"] == TOP_UPS and choices["settle"] == SETTLE_RULES
