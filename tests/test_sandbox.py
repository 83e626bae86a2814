"""The sandbox: limits that hold, output that comes back, and calls against a candidate's code."""

import os
import socket
import sys

import pytest

from rerank import ConfigError, SandboxError
from rerank.sandbox import load_and_call, run_calls, run_python


def test_normal_output_stdin_and_exit_status():
    result = run_python("import sys\nname = input()\nprint('hello', name, '✓')\nsys.exit(3)", stdin="wörld\n")
    assert result.stdout == "hello wörld ✓\n"
    assert result.returncode == 3 and not result.timed_out and not result.memory_exceeded and not result.ok
    assert run_python("print(sum(range(10)))").ok


def test_exceptions_come_back_on_stderr():
    result = run_python("raise ValueError('boom')")
    assert result.returncode == 1 and "ValueError: boom" in result.stderr


def test_infinite_loop_is_killed_by_the_cpu_limit():
    result = run_python("while True:\n    pass", cpu_seconds=1, wall_seconds=20)
    assert result.timed_out and result.returncode != 0


def test_sleeping_forever_is_killed_by_the_wall_clock():
    result = run_python("import time\nprint('started', flush=True)\ntime.sleep(600)", wall_seconds=1)
    assert result.timed_out and result.returncode == -9
    assert result.stdout == "started\n"


def test_memory_bomb_is_stopped():
    result = run_python("chunks = []\nwhile True:\n    chunks.append(bytearray(50 * 2**20))", memory_mb=256)
    assert result.memory_exceeded and not result.ok
    one_shot = run_python("x = bytearray(4 * 2**30)", memory_mb=256)
    assert one_shot.memory_exceeded


def test_socket_connect_is_blocked():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    port = server.getsockname()[1]
    shimmed = run_python(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\nprint('connected')")
    raw = run_python(f"import _socket\ns = _socket.socket()\ns.connect(('127.0.0.1', {port}))\nprint('connected')")
    server.setblocking(False)
    with pytest.raises(BlockingIOError):  # no connection ever reached the listening socket
        server.accept()
    server.close()
    assert "network access is disabled" in shimmed.stderr and shimmed.returncode != 0
    assert "connected" not in shimmed.stdout + raw.stdout and raw.returncode != 0


def test_processes_and_ctypes_are_refused():
    spawn = run_python("import subprocess\nsubprocess.run(['echo', 'hi'])")
    assert "starting processes is disabled" in spawn.stderr
    assert "starting processes is disabled" in run_python("import os\nos.system('echo hi')").stderr
    assert "ModuleNotFoundError: import of ctypes halted" in run_python("import ctypes").stderr


def test_fresh_workdir_minimal_env_and_removed_afterwards(monkeypatch):
    monkeypatch.setenv("RERANK_TEST_SECRET", "do-not-leak")
    code = "import os\nopen('note.txt', 'w').write('x')\nprint(os.getcwd())\nprint(sorted(os.environ))"
    result = run_python(code)
    workdir, env = result.stdout.splitlines()
    assert os.path.basename(workdir).startswith("rerank-sandbox-")
    assert not os.path.exists(workdir)
    assert "RERANK_TEST_SECRET" not in env and "PATH" in env


def test_big_files_and_output_are_bounded():
    big_file = run_python("open('big', 'wb').write(b'x' * (32 * 2**20))", file_mb=4)
    assert big_file.returncode != 0 and "File too large" in big_file.stderr
    chatty = run_python("while True:\n    print('x' * 1000)", wall_seconds=1, max_output=10_000)
    assert chatty.truncated and len(chatty.stdout) == 10_000


def test_bad_limits_are_config_errors_and_a_missing_interpreter_is_a_sandbox_error(monkeypatch):
    with pytest.raises(ConfigError, match="memory_mb"):
        run_python("pass", memory_mb=0)
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    with pytest.raises(SandboxError, match="could not start"):
        run_python("pass")


CODE = """
def f(x):
    print('noise that must not confuse the results')
    if x == 'loop':
        while True:
            pass
    if x == 'boom':
        raise KeyError(x)
    return [x, x * 2]

if __name__ == '__main__':
    raise SystemExit('the main block must not run')
"""


def test_run_calls_returns_the_repr_of_each_result():
    assert run_calls(CODE, ["f(1)", "f('ab')", "f('boom')", "f(2.5)"]) == ["[1, 2]", "['ab', 'abab']", None, "[2.5, 5.0]"]


def test_a_call_that_hangs_times_out_and_three_stop_the_rest():
    calls = ["f(3)", "f('loop')", "f(4)", "f('loop')", "f('loop')", "f(5)"]
    outcome = load_and_call(CODE, calls, entry_point="f", timeout=0.5)
    assert outcome.loaded and outcome.defined is True
    assert outcome.results == ("[3, 6]", None, "[4, 8]", None, None, None)
    assert "timed out" in outcome.errors[1] and "not run: 3 earlier calls" in outcome.errors[5]


def test_code_that_fails_to_load_gives_no_results():
    outcome = load_and_call("import no_such_module_here\ndef f(): return 1", ["f()"], entry_point="f")
    assert not outcome.loaded and "ModuleNotFoundError" in outcome.error
    assert outcome.results == (None,)
    missing = load_and_call("def g():\n    return 1", ["g()"], entry_point="f")
    assert missing.loaded and missing.defined is False and missing.results == ("1",)
