"""`rerank ask`: one prompt, the best of N, through the real openai SDK against rerank.testing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from conftest_server import ANSWERS, QUESTION, upstream, winner  # noqa: F401 - fixtures
from rerank.cli import main
from rerank.exits import EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE
from rerank.testing import Fault, Server, serve




def ask(*args: str, input: str | None = None, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, ["ask", *args], input=input, env=env)


def test_answers_with_the_best_of_n(upstream: Server, winner: str) -> None:
    before = upstream.generation_requests
    result = ask(QUESTION, "-n", "4", "--base-url", upstream.base_url)
    assert result.exit_code == EXIT_OK, result.output
    assert result.stdout == winner + "\n"
    assert result.stderr == ""
    assert upstream.generation_requests - before == 4
    body = upstream.requests[-1].body
    assert not body.get("stream") and body["messages"] == [{"role": "user", "content": QUESTION}]


def test_explain_writes_the_ranking_to_stderr(upstream: Server, winner: str) -> None:
    result = ask(QUESTION, "-n", "3", "--base-url", upstream.base_url, "--explain")
    assert result.exit_code == EXIT_OK, result.stderr
    assert result.stdout == winner + "\n"
    rows = [row for row in result.stderr.splitlines()[2:] if not row.lstrip().startswith("!")]
    assert len(rows) == 3
    assert rows[0].split()[:1] == ["0"]  # rank 0 is the best, as in the JSON and explain()
    assert " ".join(winner.split())[:40] in rows[0]


def test_system_model_and_n_reach_the_upstream(upstream: Server) -> None:
    result = ask(QUESTION, "-n", "2", "--model", "local-7b", "--system", "Answer briefly.",
                 "--base-url", upstream.base_url)
    assert result.exit_code == EXIT_OK, result.output
    bodies = [r.body for r in upstream.requests[-2:]]
    assert {b["model"] for b in bodies} == {"local-7b"}
    assert bodies[0]["messages"][0] == {"role": "system", "content": "Answer briefly."}


@pytest.mark.slow  # a subprocess run (make check skips it; make test runs it)
def test_prompt_from_stdin_in_a_real_shell_pipeline(upstream: Server, winner: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    done = subprocess.run([sys.executable, "-m", "rerank.cli", "ask", "-", "-n", "4", "--base-url", upstream.base_url],
                          input=QUESTION + "\n", capture_output=True, text=True, env=env, timeout=240)
    assert done.returncode == EXIT_OK, done.stderr
    assert done.stdout == winner + "\n"
    assert upstream.requests[-1].body["messages"][-1]["content"] == QUESTION + "\n"


def test_no_api_key_is_a_usage_error_before_any_request(upstream: Server) -> None:
    before = len(upstream.requests)
    result = ask(QUESTION, env={"OPENAI_API_KEY": "", "OPENAI_BASE_URL": ""})
    assert result.exit_code == EXIT_USAGE
    assert "no API key" in result.stderr and "--base-url" in result.stderr
    assert len(upstream.requests) == before


def test_an_empty_prompt_is_a_usage_error(upstream: Server) -> None:
    result = ask("-", "--base-url", upstream.base_url, input="  \n")
    assert result.exit_code == EXIT_USAGE
    assert "prompt is empty" in result.stderr


def test_an_unreachable_upstream_exits_1_naming_it() -> None:
    with serve(candidates=ANSWERS) as server:
        base_url = server.base_url  # the port is free again once the server is closed
    result = ask(QUESTION, "--base-url", base_url, "--max-retries", "0")
    assert result.exit_code == EXIT_SOME_FAILED
    assert f"cannot reach {base_url}" in result.stderr
    assert result.stdout == ""


def test_an_upstream_error_status_exits_1_with_its_message() -> None:
    with serve(candidates=ANSWERS, faults=[Fault(kind="status", status=401)]) as server:
        result = ask(QUESTION, "--base-url", server.base_url, "--max-retries", "0")
    assert result.exit_code == EXIT_SOME_FAILED
    assert "answered 401" in result.stderr and "injected error 401" in result.stderr
    assert "OPENAI_API_KEY" in result.stderr


def test_help_lists_the_exit_codes() -> None:
    result = CliRunner().invoke(main, ["ask", "--help"])
    assert result.exit_code == 0
    assert "Exit codes: 0 answered; 1 no answer" in " ".join(result.output.split())


@pytest.mark.slow  # a subprocess run (make check skips it; make test runs it)
def test_ctrl_c_exits_130() -> None:
    with serve(candidates=ANSWERS, latency=30) as server:
        # Ctrl-C in a terminal: SIGINT at its default disposition, even when this test runs in a
        # background job (which starts with SIGINT ignored, and a child would inherit that).
        process = subprocess.Popen([sys.executable, "-m", "rerank.cli", "ask", QUESTION, "--base-url", server.base_url],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            deadline = time.monotonic() + 240
            while not server.requests and time.monotonic() < deadline:  # wait until the question is out
                time.sleep(0.1)
            process.send_signal(signal.SIGINT)
            _, stderr = process.communicate(timeout=60)
        finally:
            process.kill()
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr
