"""The README walks: every shell command and Python block of README.md runs as written.

The shell blocks run in order in one bash session in the checkout (as a reader would type
them, in one terminal), the Python blocks in order in one interpreter, both against the
bundled test server. A block whose first line is ``# not run by tests/test_readme.py: WHY``
is listed as skipped with its reason. The one change made to the text: the quick start's
``--port 8000`` becomes a free port, so that parallel runs do not collide.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import REPO
from rerank.testing import serve

README = REPO / "README.md"
MARK = "# not run by tests/test_readme.py:"
RUN = ("bash", "sh", "shell", "python")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)


@dataclass(frozen=True)
class Block:
    """One fenced block of the README."""

    language: str
    code: str
    line: int

    @property
    def reason(self) -> str | None:
        """Why the block is not run (its first line's marker), or None."""
        first = self.code.split("\n", 1)[0].strip()
        return first[len(MARK):].strip() if first.startswith(MARK) else None


def blocks() -> list[Block]:
    """The README's shell and Python blocks, in order."""
    text = README.read_text(encoding="utf-8")
    return [Block(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1)
            for m in FENCE.finditer(text) if m.group(1) in RUN]


def runnable(language: str) -> list[Block]:
    return [b for b in blocks() if b.reason is None and (b.language == "python") == (language == "python")]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", LITELLM_LOCAL_MODEL_COST_MAP="True", **extra)
    return env


@pytest.mark.parametrize("block", [b for b in blocks() if b.reason is not None], ids=lambda b: f"line-{b.line}")
def test_blocks_not_run_say_why(block: Block) -> None:
    assert block.reason, f"README line {block.line}: the marker needs a reason"
    pytest.skip(f"README line {block.line} ({block.language}) is not run: {block.reason}")


def test_every_unmarked_block_is_run() -> None:
    every = blocks()
    assert len(runnable("bash")) + len(runnable("python")) + sum(b.reason is not None for b in every) == len(every)
    assert runnable("bash") and runnable("python")


@pytest.mark.slow  # a subprocess run (make check skips it; make test runs it)
@pytest.mark.timeout(900)
def test_the_shell_blocks_run_in_one_session(tmp_path: Path) -> None:
    port = free_port()
    script = ["set -euo pipefail"]
    for block in runnable("bash"):
        script += [f"echo '>>> README line {block.line}' >&2", block.code.replace("--port 8000", f"--port {port}")
                   .replace("127.0.0.1:8000", f"127.0.0.1:{port}")]
    before = {p.name for p in REPO.iterdir()}
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    with open(out, "w") as stdout_file, open(err, "w") as stderr_file:
        process = subprocess.Popen(["bash", "-c", "\n".join(script)], cwd=REPO, env=environment(), text=True,
                                   stdout=stdout_file, stderr=stderr_file, start_new_session=True)
    try:
        process.wait(timeout=840)
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)  # the background test server the quick start started
        except ProcessLookupError:
            pass
        process.kill()
        created = {p.name for p in REPO.iterdir()} - before
        outputs = {name: (REPO / name).read_text() for name in created if (REPO / name).is_file()}
        for name in created:
            (REPO / name).unlink()
    stdout, stderr = out.read_text(), err.read_text()
    last = [row for row in stderr.splitlines() if row.startswith(">>> README line")][-1:]
    assert process.returncode == 0, f"failed after {last}:\n{stderr[-3000:]}"
    answers = [json.loads(row) for row in (REPO / "examples" / "chat.jsonl").read_text().splitlines()][0]
    assert any(candidate in stdout for candidate in answers["candidates"])  # rerank ask's answer
    assert "== ask  profile=chat" in stderr or "== ask  profile=chat" in outputs.get("ranking.txt", "")
    assert set(outputs) >= {"ranked.jsonl", "ranking.txt"}
    assert len(outputs["ranked.jsonl"].splitlines()) == len((REPO / "examples" / "code.jsonl").read_text().splitlines())


@pytest.mark.slow  # a subprocess run (make check skips it; make test runs it)
@pytest.mark.timeout(900)
def test_the_python_blocks_run_in_order() -> None:
    program = ["import sys", "namespace = {}"]
    for block in runnable("python"):
        program += [f"print('>>> README line {block.line}', file=sys.stderr)",
                    f"exec(compile({block.code!r}, 'README.md line {block.line}', 'exec'), namespace)"]
    with serve(pools=REPO / "examples" / "chat.jsonl", n_mode="ignore") as server:  # one request per candidate
        done = subprocess.run([sys.executable, "-c", "\n".join(program)], cwd=REPO, capture_output=True, text=True,
                              env=environment(OPENAI_BASE_URL=server.base_url, OPENAI_API_KEY="test"), timeout=900)
        requests = server.generation_requests
    assert done.returncode == 0, done.stderr[-3000:]
    # the quick start, LangChain, LiteLLM's completion and responses: each the best of 4 (each
    # also calls rerank.explain, which raises on an answer that was not reranked)
    assert requests == 4 * 4
