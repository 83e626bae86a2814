"""The sharp edges a new user meets in the first hour (issue 16): one rank convention, whole
numbers in tables, a meaningful ETA, empty input, exit codes in --help, a licence setuptools
accepts, a warning when a validator fails everything, the testing server's 400."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import warnings
from pathlib import Path

import openai
import pytest
from click.testing import CliRunner

import rerank
from conftest import CODE_EXAMPLES, EXAMPLES, REPO
from rerank.cli import main
from rerank.exits import EXIT_OK, EXIT_USAGE
from rerank.progress import MIN_TIMED, Progress
from rerank.testing import serve


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_eta_waits_for_items_timed_after_the_slow_first_one() -> None:
    clock, stream = Clock(), io.StringIO()
    progress = Progress("score", total=100, stream=stream, log_every=0, clock=clock)
    clock.now += 30  # the first item carries the model's loading
    progress.advance()
    for _ in range(MIN_TIMED - 1):
        clock.now += 0.5
        progress.advance()
    assert progress.eta() is None and "ETA" not in stream.getvalue()
    clock.now += 0.5
    progress.advance()
    assert progress.eta() == pytest.approx((100 - progress.done) * 0.5)  # 0.5 s an item, not 30
    assert stream.getvalue().splitlines()[-1].endswith("ETA 00:00:48")


def test_the_last_progress_line_is_written_once() -> None:
    clock, stream = Clock(), io.StringIO()
    progress = Progress("score", stream=stream, log_every=10, clock=clock)
    clock.now += 2
    progress.advance()  # written: the first line of a log
    progress.close()
    assert stream.getvalue().splitlines() == ["score: 1, 0.5/s, 2.0s"]
    clock.now += 1
    progress.advance()  # not written: within log_every
    progress.close()
    assert stream.getvalue().splitlines()[1:] == ["score: 2, 0.7/s, 3.0s"]


@pytest.mark.slow  # a subprocess run (make check skips it; make test runs it)
def test_stdin_run_prints_its_progress_line_once() -> None:
    line = EXAMPLES.read_text().splitlines()[0] + "\n"
    done = subprocess.run([sys.executable, "-m", "rerank.cli", "score", "-"], input=line, capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == EXIT_OK, done.stderr
    progress = [row for row in done.stderr.splitlines() if row.startswith("score: ")]
    assert len(progress) == 1, done.stderr


def test_rank_zero_is_the_best_in_json_table_and_explain() -> None:
    rows = [json.loads(row) for row in CliRunner().invoke(main, ["score", str(EXAMPLES), "-q"]).stdout.splitlines()]
    table = CliRunner().invoke(main, ["score", str(EXAMPLES), "-q", "--format", "table"]).stdout
    firsts = [row.split() for row in table.splitlines() if re.match(r"^\s+0\s+\d+\s", row)]
    assert len(firsts) == len(rows)
    for row, first in zip(rows, firsts):
        best = next(c for c in row["candidates"] if c["rank"] == 0)
        assert best["index"] == row["best_index"] == int(first[1])
    ranking = rerank.Reranker().rank({"query": "capital of France?"}, ["Paris.", "Bananas are yellow.", "Paris!"])
    assert ranking.best.rank == 0 and ranking.to_dict()["candidates"][ranking.best_index]["rank"] == 0


def test_the_table_never_cuts_a_number() -> None:
    table = CliRunner().invoke(main, ["score", str(EXAMPLES), "-q", "--format", "table"]).stdout
    rows = [row for row in table.splitlines() if re.match(r"^\s+\d+\s+\d+\s+-?\d", row)]
    assert rows
    for row in rows:
        signals = row[24:24 + 64].split()
        for token in signals:
            assert re.fullmatch(r"[\w-]+=[+-]\d+\.\d\d|\+\d+|more", token), (token, row)


def test_an_empty_input_is_a_usage_error_with_a_message(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    result = CliRunner().invoke(main, ["score", str(empty)])
    assert result.exit_code == EXIT_USAGE
    assert "is empty: nothing to rank" in result.stderr
    piped = CliRunner().invoke(main, ["score", "-", "-q"], input="")
    assert piped.exit_code == EXIT_USAGE
    assert "stdin is empty: nothing to rank" in piped.stderr


def test_a_validator_failing_everything_is_warned_about() -> None:
    result = CliRunner().invoke(main, ["score", str(EXAMPLES), "-q", "--validator", "python"])
    assert result.exit_code == EXIT_OK
    assert "every candidate of all 3 pools failed validation (python failed 11 of 11" in result.stderr
    fitting = CliRunner().invoke(main, ["score", str(CODE_EXAMPLES), "-q", "--validator", "python"])
    assert fitting.exit_code == EXIT_OK and "warning" not in fitting.stderr


@pytest.mark.parametrize("command", sorted(main.commands))
def test_every_help_lists_its_exit_codes(command: str) -> None:
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0
    assert "Exit codes: 0 " in " ".join(result.stdout.split())


def test_the_licence_is_an_spdx_string_setuptools_takes_without_warning() -> None:
    from setuptools.config.pyprojecttoml import read_configuration

    for path in [REPO / "pyproject.toml", *sorted((REPO / "plugins").glob("*/pyproject.toml"))]:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # setuptools' licence-table deprecation is a warning
            config = read_configuration(path, expand=True)
        assert config["project"]["license"] == "MIT", path
    assert (REPO / "LICENSE").read_text().startswith("MIT License")


def test_the_pools_server_lists_its_queries_for_an_unknown_one(tmp_path: Path) -> None:
    with serve(pools=EXAMPLES) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="t", max_retries=0)
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Explain BM25."}])
    message = str(caught.value)
    assert "got 'Explain BM25.'" in message and "the 3 known queries" in message
    for row in EXAMPLES.read_text().splitlines():
        assert json.loads(row)["query"] in message


def test_an_empty_pipe_is_a_usage_error_with_a_message() -> None:
    done = subprocess.run([sys.executable, "-m", "rerank.cli", "score", "-"], input="", capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == EXIT_USAGE
    assert "stdin holds no lines: nothing was ranked" in done.stderr
