"""The sandbox: limits that hold, output that comes back, and calls against a candidate's code."""

import json
import os
import site
import sys

import pytest
from click.testing import CliRunner

from rerank import ConfigError, Reranker, SandboxError
from rerank.cli import main
from rerank.isolation import isolation_problem
from rerank.sandbox import Opaque, load_and_call, run_calls, run_python
from rerank.scorers.execution import ExecutionConsensus
from rerank.validators.python import DoctestValidator


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


def test_the_code_runs_as_nobody_in_namespaces_of_its_own_seeing_only_python():
    code = """
import json, os, socket, sys
print(json.dumps({"pid": os.getpid(), "uid": os.getuid(), "host": socket.gethostname(),
                  "nets": [n for _, n in socket.if_nameindex()], "root": sorted(os.listdir("/")),
                  "procs": sorted(p for p in os.listdir("/proc") if p.isdigit()),
                  "cwd": os.getcwd(), "tmp": os.listdir("."), "env": sorted(os.environ), "path": sys.path}))
"""
    result = run_python(code)
    assert result.ok and result.isolated, result.stderr
    seen = json.loads(result.stdout)
    assert seen["pid"] < 10 and seen["uid"] == 65534 and seen["host"] == "sandbox"
    assert seen["nets"] == ["lo"]
    python_top = os.path.realpath(sys.base_prefix).split("/")[1]
    assert set(seen["root"]) <= {"dev", "etc", "lib", "lib32", "lib64", "proc", "rerank", "tmp", "usr", python_top}
    assert not {"home", "run", "var", "work", "mnt"} & set(seen["root"]) - {python_top}
    assert len(seen["procs"]) <= 3  # bwrap's init and the child, never the host's processes
    assert seen["cwd"] == "/tmp" and seen["tmp"] == []
    assert seen["env"] == ["HOME", "LANG", "LC_ALL", "PATH", "PWD", "TMPDIR"]
    assert not any("site-packages" in p or "dist-packages" in p for p in seen["path"])


def test_installed_packages_and_the_checkout_are_out_of_sight():
    import click

    hidden = [os.path.dirname(os.path.dirname(click.__file__)), os.path.dirname(os.path.abspath(__file__)),
              site.getsitepackages([sys.base_prefix])[0]]
    result = run_python(f"import os\nfor p in {hidden!r}:\n    print(os.path.isdir(p) and len(os.listdir(p)))")
    assert result.ok, result.stderr
    assert result.stdout.split() == ["False", "False", "0"]  # the base install's packages: an empty tmpfs


def test_the_private_tmp_is_fresh_each_run_and_never_on_the_host(tmp_path):
    name = f"rerank-note-{os.getpid()}.txt"
    first = run_python(f"import os\nprint(os.listdir('.'))\nopen({name!r}, 'w').write('x')\nprint(os.listdir('.'))")
    second = run_python("import os\nprint(os.listdir('.'))")
    assert first.stdout.splitlines() == ["[]", f"['{name}']"] and second.stdout == "[]\n"
    assert not os.path.exists(os.path.join("/tmp", name))


def test_big_files_and_output_are_bounded():
    big_file = run_python("open('big', 'wb').write(b'x' * (32 * 2**20))", file_mb=4)
    assert big_file.returncode != 0 and "File too large" in big_file.stderr
    chatty = run_python("while True:\n    print('x' * 1000)", wall_seconds=1, max_output=10_000)
    assert chatty.truncated and len(chatty.stdout) == 10_000


def test_bad_limits_are_config_errors_and_a_missing_interpreter_is_a_sandbox_error(monkeypatch):
    with pytest.raises(ConfigError, match="memory_mb"):
        run_python("pass", memory_mb=0)
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    with pytest.raises(SandboxError, match="could not start the sandbox"):
        run_python("pass")
    with pytest.raises(SandboxError, match="could not start the sandbox"):
        run_python("pass", unsafe_exec=True)


def test_code_that_prints_a_fake_sandbox_error_is_still_the_codes_failure():
    result = run_python("import sys\nsys.stderr.write('bwrap: setting up uid map: Permission denied\\n')\nsys.exit(1)")
    assert result.returncode == 1 and "bwrap:" in result.stderr


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


# --- Where isolation cannot be had: refuse, unless the caller said --unsafe-exec --------------


@pytest.fixture
def no_bwrap(monkeypatch, tmp_path):
    """A PATH without bwrap, as on a machine where bubblewrap is not installed."""
    monkeypatch.setenv("PATH", str(tmp_path))
    isolation_problem.cache_clear()
    yield
    monkeypatch.undo()
    isolation_problem.cache_clear()


def test_without_bwrap_every_entry_point_refuses_and_names_the_fix(no_bwrap):
    assert "apt-get install bubblewrap" in isolation_problem()
    for attempt in (lambda: run_python("print(1)"), lambda: load_and_call(CODE, ["f(1)"]),
                    lambda: DoctestValidator(), lambda: ExecutionConsensus(),
                    lambda: Reranker(validators=["python-doctest"])):
        with pytest.raises(SandboxError, match=r"refusing to run candidate code without isolation: bubblewrap "
                                               r"is not installed.*apt-get install bubblewrap.*--unsafe-exec"):
            attempt()


def test_where_bwrap_cannot_make_namespaces_the_sandbox_refuses_and_says_why(monkeypatch, tmp_path):
    fake = tmp_path / "bwrap"  # what Debian's bwrap prints where user namespaces are switched off
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to creating new namespace, likely because the kernel "
                    "does not allow non-privileged user namespaces.' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    isolation_problem.cache_clear()
    try:
        with pytest.raises(SandboxError, match=r"No permissions to creating new namespace.*user namespaces "
                                               r"allowed.*--unsafe-exec"):
            DoctestValidator()
        assert not run_python("print(1)", unsafe_exec=True).isolated
    finally:
        monkeypatch.undo()
        isolation_problem.cache_clear()


def test_unsafe_exec_runs_unisolated_and_says_so(no_bwrap):
    result = run_python("import os\nprint(os.getcwd())", unsafe_exec=True)
    assert result.ok and not result.isolated and "rerank-sandbox-" in result.stdout
    assert load_and_call(CODE, ["f(2)"], unsafe_exec=True).results == ("[2, 4]",)
    ranking = Reranker(validators=["python-doctest"], unsafe_exec=True).rank(PROMPT, [GOOD, BAD])
    assert ranking.best_index == 0 and not ranking.candidates[1].passed


def test_the_cli_refuses_without_bwrap_and_runs_with_unsafe_exec(no_bwrap, tmp_path):
    pools = tmp_path / "code.jsonl"
    pools.write_text(json.dumps({"id": "add", "query": PROMPT, "candidates": [BAD, GOOD]}) + "\n")
    refused = CliRunner().invoke(main, ["score", str(pools), "-q", "--validator", "python-doctest"])
    assert refused.exit_code == 2 and "apt-get install bubblewrap" in refused.output
    assert "--unsafe-exec" in refused.output and "Traceback" not in refused.output
    allowed = CliRunner().invoke(main, ["score", str(pools), "-q", "--validator", "python-doctest", "--unsafe-exec"])
    assert allowed.exit_code == 0, allowed.output
    assert json.loads(allowed.output)["best_index"] == 1
    assert "--unsafe-exec" in CliRunner().invoke(main, ["generate", "--help"]).output


PROMPT = '''def add(a: int, b: int) -> int:
    """Add two numbers.

    >>> add(2, 3)
    5
    >>> add(-1, 1)
    0
    """
'''
GOOD = "```python\ndef add(a: int, b: int) -> int:\n    return a + b\n```"
BAD = "```python\ndef add(a: int, b: int) -> int:\n    return a - b\n```"


def test_values_come_back_as_plain_data_exactly_and_anything_else_as_opaque():
    code = """
import collections
def big():
    return 7 ** 6000
def plain():
    return [1, -0.0, float("nan"), float("inf"), 2 + 3j, b"\\x00\\xff", chr(0xD800), None, True,
            (1, (2,)), {1, 2}, frozenset({"a"}), {"k": [1], (1, 2): "tuple key"}]
def subclass():
    return collections.OrderedDict(a=1)
def nested_object():
    return [1, object()]
def huge():
    return "x" * 10_000_000
"""
    outcome = load_and_call(code, ["big()", "plain()", "subclass()", "nested_object()", "huge()"])
    big, plain, subclass, nested, huge = outcome.values
    assert big == 7 ** 6000 and outcome.errors[:2] == (None, None)
    assert "integer too long to print" in outcome.results[0]
    assert plain[0] == 1 and str(plain[1]) == "-0.0" and plain[2] != plain[2] and plain[3] == float("inf")
    assert plain[4:] == [2 + 3j, b"\x00\xff", chr(0xD800), None, True, (1, (2,)), {1, 2}, frozenset({"a"}),
                         {"k": [1], (1, 2): "tuple key"}]
    assert type(plain[5]) is bytes and type(plain[9]) is tuple and type(plain[11]) is frozenset
    assert isinstance(subclass, Opaque) and subclass.type_name == "OrderedDict"
    assert outcome.results[2] is None and "returned a OrderedDict object" in outcome.errors[2]
    assert isinstance(nested, Opaque) and nested.type_name == "object"
    assert isinstance(huge, Opaque) and huge.type_name == "too large"
