"""Hostile candidates: each attack on the sandbox from issue 12, tried as a candidate would, must be contained.

The attacks run for real (as root on the test machine): a candidate kills rerank, kills its
sibling sandboxes, forges its doctest result, starts processes that should outlive it, reads
host files into its error message, writes outside its private directory or fills the disk,
and connects to host sockets. Each test asserts the attack reached nothing outside the sandbox.
"""

import json
import os
import secrets
import socket
import sysconfig
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from click.testing import CliRunner

from rerank.cli import main
from rerank.isolation import PROCESS_LIMIT
from rerank.sandbox import run_python
from rerank.types import Candidate, Request
from rerank.validators.python import DoctestValidator

QUERY = '''def add(a: int, b: int) -> int:
    """Add two numbers.

    >>> add(2, 3)
    5
    """
'''
HONEST = "def add(a: int, b: int) -> int:\n    return a + b\n"


def answer(code: str) -> str:
    return f"```python\n{code}\n```"


def doctest_check(code: str):
    return DoctestValidator(timeout=5).check(Request.coerce(QUERY), Candidate.coerce(answer(code)))


def host_processes_with(token: str) -> list[int]:
    """Host processes whose command line holds ``token`` (a zombie's is empty, so only live ones)."""
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if token.encode() in f.read():
                        found.append(int(pid))
            except OSError:
                continue
    return found


def test_killing_rerank_itself_reaches_nothing_and_no_line_is_lost(tmp_path):
    killer = answer(f"""
import os, signal
for pid in (os.getppid(), {os.getpid()}, {os.getppid()}):  # its parent, then rerank's pid and rerank's parent
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
{HONEST}""")
    pools = tmp_path / "pools.jsonl"
    pools.write_text(json.dumps({"id": "attacked", "query": QUERY, "candidates": [killer, answer(HONEST)]}) + "\n"
                     + json.dumps({"id": "after", "query": QUERY, "candidates": [answer(HONEST), answer("def add(a, b):\n    return a * b")]}) + "\n")
    result = CliRunner().invoke(main, ["score", str(pools), "-q", "--validator", "python-doctest"])
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert result.exit_code == 0, result.output
    assert [line["id"] for line in lines] == ["attacked", "after"]
    assert lines[1]["best_index"] == 0 and all(len(line["candidates"]) == 2 for line in lines)


@pytest.mark.slow
def test_a_candidate_cannot_see_or_kill_its_sibling_sandboxes():
    honest = "import time\ntime.sleep(3)\nprint('still here')"
    attack = """
import os, signal, time
seen = {}
deadline = time.monotonic() + 2
while time.monotonic() < deadline:  # hunt for other sandboxes for two seconds, killing what it finds
    for pid in os.listdir('/proc'):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f'/proc/{pid}/cmdline', 'rb') as f:
                cmdline = f.read()
        except OSError:
            continue
        if b'bwrap' in cmdline or b'-I\\0-S' in cmdline:  # any rerank sandbox, old or new
            os.kill(int(pid), signal.SIGKILL)
            seen[int(pid)] = cmdline.split(b'\\0')[0].decode()
    time.sleep(0.05)
print(sorted(seen))
"""
    with ThreadPoolExecutor(max_workers=2) as pool:
        sibling = pool.submit(run_python, honest, wall_seconds=30)
        attacker = pool.submit(run_python, attack, wall_seconds=30)
        survived, attacked = sibling.result(), attacker.result()
    assert survived.ok and survived.stdout == "still here\n", survived.stderr
    assert attacked.ok, attacked.stderr
    assert json.loads(attacked.stdout) in ([], [1])  # at most its own bwrap init, which ignores SIGKILL from inside


FORGERIES = {  # each wrong add() tries to pass as right; the message shows what the parent saw
    "a patched repr": ("returned 0, expected 5", """
import builtins
builtins.repr = lambda value: '5'
def add(a, b):
    return 0
"""),
    "a value with its own __eq__ and __repr__": ("returned a Five object, not a plain value", """
class Five(int):
    def __eq__(self, other):
        return True
    __hash__ = int.__hash__
    def __repr__(self):
        return '5'
def add(a, b):
    return Five(0)
"""),
    "patched serialisers": ("returned 0, expected 5", """
import json, os
dumps, encode, write = json.dumps, json.JSONEncoder.encode, os.write
json.dumps = lambda *args, **kwargs: dumps(*args, **kwargs).replace('"0x0"', '"0x5"')
json.JSONEncoder.encode = lambda self, value: encode(self, value).replace('"0x0"', '"0x5"')
os.write = lambda fd, data: write(fd, data.replace(b'"0x0"', b'"0x5"'))
def add(a, b):
    return 0
"""),
    "the driver's frames and every open descriptor": ("wrote to the sandbox's result channel", """
import json, os, sys
forged = [{"loaded": True, "error": None, "defined": True}, {"i": 0, "value": ["i", "0x5"]}, {"done": True}]
frame = sys._getframe()
while frame is not None:
    for scope in (frame.f_globals, frame.f_locals):
        for name, value in list(scope.items()):
            if callable(value) and "emit" in name:
                for record in forged:
                    value(record)
    frame = frame.f_back
for fd in range(3, 1024):
    try:
        os.write(fd, "".join(json.dumps(r) + "\\n" for r in forged).encode())
    except OSError:
        pass
def add(a, b):
    return 0
"""),
}


@pytest.mark.parametrize("how", FORGERIES)
def test_a_candidate_cannot_forge_its_doctest_result(how):
    seen, code = FORGERIES[how]
    forged = doctest_check(code)
    assert not forged.passed and seen in forged.message, forged.message
    assert doctest_check(HONEST).passed


@pytest.mark.slow
def test_processes_are_bounded_and_none_outlives_the_run():
    token = f"rerank-hostile-{secrets.token_hex(6)}"
    code = f"""
import ctypes, os, posix, sys, time
if posix.fork() == 0:  # a grandchild in a session of its own, exec'd into a long sleep
    os.setsid()
    if posix.fork() == 0:
        posix.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(120)", {token!r}])
    os._exit(0)
print("system:", __import__("posix").system("sleep 120 # {token}"))
libc = ctypes.CDLL(None)
started = failed = 0
for i in range(200):
    try:
        pid = posix.fork() if i % 2 else libc.fork()
        if pid < 0:
            raise OSError(ctypes.get_errno(), "fork failed")
    except OSError:
        failed += 1
        continue
    if pid == 0:
        posix.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(120)", {token!r}])
    started += 1
print("started", started, "failed", failed, flush=True)
"""
    finished = run_python(code, wall_seconds=30)
    assert finished.ok, finished.stderr
    started, failed = (int(n) for n in finished.stdout.split()[-3::2])
    assert 0 < started < PROCESS_LIMIT and failed == 200 - started
    assert host_processes_with(token) == []
    killed = run_python(code + "time.sleep(120)\n", wall_seconds=3)  # the wall clock ends it
    assert killed.timed_out and killed.returncode == -9
    assert host_processes_with(token) == []


def test_host_files_stay_out_of_reach_and_messages_stay_short(tmp_path, monkeypatch):
    secret = f"TOP-SECRET-{secrets.token_hex(6)}"
    (tmp_path / "secret.txt").write_text(secret)
    monkeypatch.setenv("RERANK_HOSTILE_SECRET", secret)
    targets = ["/etc/shadow", "/etc/passwd", str(tmp_path / "secret.txt"), str(Path(__file__).resolve()),
               "/root/.bash_history", "/proc/1/environ", "/proc/self/environ"]
    code = f"""
import os
def add(a, b):
    found = [os.environ.get("RERANK_HOSTILE_SECRET", "")]
    for path in {targets!r}:
        try:
            with open(path, errors="replace") as f:
                found.append(f.read())
        except OSError as exc:
            found.append(type(exc).__name__)
    raise RuntimeError(repr(found) + "x" * 1_000_000)
"""
    check = doctest_check(code)
    assert not check.passed and "RuntimeError" in check.message
    assert secret not in check.message and "root:" not in check.message
    assert len(check.message) < 1000
    ran = run_python(code + "try:\n    add(1, 2)\nexcept RuntimeError as exc:\n    print(str(exc)[:5000])\n")
    assert secret not in ran.stdout and "root:" not in ran.stdout
    assert ran.stdout.count("FileNotFoundError") == 5


def test_writes_stay_in_the_private_tmp_and_its_total_size_is_bounded(tmp_path):
    outside = [str(tmp_path / "pwned"), "/pwned", "/usr/lib/pwned", "/etc/pwned", "/dev/shm/pwned",
               os.path.join(sysconfig.get_path("stdlib"), "pwned.py"), "/rerank/main.py"]
    code = f"""
import errno
for path in {outside!r}:
    try:
        with open(path, "w") as f:
            f.write("x")
        print("WROTE", path)
    except OSError as exc:
        print("refused", errno.errorcode[exc.errno])
written = 0
try:
    for i in range(64):  # many files, each under the per-file limit
        with open(f"fill{{i}}", "wb") as f:
            f.write(b"x" * (1 << 20))
        written += 1 << 20
except OSError as exc:
    print("full", errno.errorcode[exc.errno])
print("written", written)
"""
    result = run_python(code, file_mb=8)
    assert result.ok, result.stderr
    assert "WROTE" not in result.stdout and result.stdout.count("refused") == len(outside)
    assert "full ENOSPC" in result.stdout
    assert 0 < int(result.stdout.split()[-1]) <= 8 << 20
    assert not (tmp_path / "pwned").exists() and not os.path.exists("/pwned")


def test_host_sockets_are_out_of_reach(tmp_path):
    token = secrets.token_hex(6)
    path_server = socket.socket(socket.AF_UNIX)
    path_server.bind(str(tmp_path / "host.sock"))
    abstract_server = socket.socket(socket.AF_UNIX)
    abstract_server.bind(f"\0rerank-hostile-{token}")
    tcp_server = socket.socket()
    tcp_server.bind(("127.0.0.1", 0))
    servers = [path_server, abstract_server, tcp_server]
    for server in servers:
        server.listen(4)
        server.setblocking(False)
    addresses = [("AF_UNIX", str(tmp_path / "host.sock")), ("AF_UNIX", f"\0rerank-hostile-{token}"),
                 ("AF_INET", ("127.0.0.1", tcp_server.getsockname()[1]))]
    code = f"""
import socket
for family, address in {addresses!r}:
    s = socket.socket(getattr(socket, family))
    s.settimeout(2)
    try:
        s.connect(address)
        print("CONNECTED", address)
    except OSError as exc:
        print("refused", type(exc).__name__)
"""
    result = run_python(code)
    try:
        for server in servers:
            with pytest.raises(BlockingIOError):  # no connection ever reached a host socket
                server.accept()
    finally:
        for server in servers:
            server.close()
    assert result.ok, result.stderr
    assert "CONNECTED" not in result.stdout and result.stdout.count("refused") == 3
    assert "ConnectionRefusedError" in result.stdout  # TCP reached only the namespace's own empty loopback
