"""Run untrusted Python code in a child process with time, memory, output and network limits.

What the sandbox does, honestly:

- The child is a fresh ``python -I -S`` (isolated mode: no ``PYTHON*`` variables, no user or
  site packages, so only the standard library imports) in a new session, with a minimal
  environment and a fresh temporary directory as its working directory, removed afterwards.
- Before the code runs, the child itself sets resource limits: CPU seconds (``RLIMIT_CPU``),
  address space (``RLIMIT_AS``), size of files it writes (``RLIMIT_FSIZE``), open files, no core
  dumps, and no new processes (``RLIMIT_NPROC``; the kernel does not apply it to root).
  The limits are set in the child rather than in ``preexec_fn``, which is unsafe in a
  multi-threaded parent (validators run pools on threads); they are in force before the code runs.
- Network: the child tries to enter new user and network namespaces (only a loopback device
  that is down), which works where unprivileged user namespaces are allowed or as root. In every
  case ``socket.socket`` and friends are replaced by functions that raise, ``os.fork``,
  ``os.system``, ``subprocess`` and ``ctypes`` are disabled. These shims stop ordinary code, not
  a determined attacker: code that reaches native code another way is not contained by them.
- The parent kills the whole process group when the wall-clock budget runs out, and keeps only
  the first ``max_output`` bytes of stdout and stderr.
- Not isolated: the filesystem. The code runs with the caller's user id and can read what that
  user can read and write (within ``RLIMIT_FSIZE``) where that user can write.
"""

from __future__ import annotations

import json
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Sequence

from .errors import ConfigError, SandboxError

MEMORY_EXIT = 86
"""Exit status the child uses when the code ran out of memory."""
SETUP_EXIT = 87
"""Exit status the child uses when the sandbox itself could not be set up."""

_BOOTSTRAP = r"""
import sys
def _setup(limits):
    import ctypes, os, resource
    libc = ctypes.CDLL(None, use_errno=True)
    for flags in (0x10000000 | 0x40000000, 0x40000000):  # CLONE_NEWUSER|CLONE_NEWNET, CLONE_NEWNET
        if libc.unshare(flags) == 0:
            break
    cpu, memory, fsize, nofile = limits
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))

    def refuse(what):
        def blocked(*args, **kwargs):
            raise PermissionError(what + " is disabled in the rerank sandbox")
        return blocked

    import socket, _socket, subprocess, _posixsubprocess
    net = refuse("network access")
    for module in (socket, _socket):
        for name in ("socket", "socketpair", "fromfd", "create_connection", "create_server",
                     "getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr"):
            if hasattr(module, name):
                setattr(module, name, net)
    spawn = refuse("starting processes")
    for name in ("fork", "forkpty", "system", "popen", "posix_spawn", "posix_spawnp", "execv",
                 "execve", "execl", "execle", "execlp", "execlpe", "execvp", "execvpe",
                 "spawnl", "spawnle", "spawnlp", "spawnlpe", "spawnv", "spawnve", "spawnvp", "spawnvpe"):
        if hasattr(os, name):
            setattr(os, name, spawn)
    _posixsubprocess.fork_exec = spawn
    subprocess.Popen.__init__ = spawn
    for name in ("ctypes", "_ctypes", "ctypes.util"):
        sys.modules[name] = None
    import builtins
    builtins.exit = builtins.quit = sys.exit

try:
    _setup(%(limits)r)
except BaseException as exc:
    sys.stderr.write("rerank sandbox setup failed: %%r\n" %% (exc,))
    sys.stderr.flush()
    import os; os._exit(%(setup_exit)d)
del _setup
sys.stdout.reconfigure(encoding="utf-8", errors="backslashreplace")
sys.stderr.reconfigure(encoding="utf-8", errors="backslashreplace")
sys.argv = ["main.py"]
sys.path.insert(0, "")
with open("main.py", encoding="utf-8") as _f:
    _code = compile(_f.read(), "main.py", "exec")
del _f
try:
    exec(_code, {"__name__": "__main__", "__builtins__": __builtins__})
except MemoryError:
    sys.stderr.write("MemoryError: the code exceeded the sandbox's memory limit\n")
    sys.stderr.flush()
    import os; os._exit(%(memory_exit)d)
"""


@dataclass(frozen=True)
class SandboxResult:
    """What a sandboxed run produced.

    ``returncode`` is negative when a signal ended the child (``-9`` for the wall-clock kill).
    ``timed_out`` covers both the wall-clock and the CPU limit; ``memory_exceeded`` means the
    code ran out of the address space it was allowed. ``stdout``/``stderr`` are cut to the
    output bound; ``truncated`` says whether anything was dropped.
    """

    returncode: int
    stdout: str
    stderr: str
    timed_out: bool = False
    memory_exceeded: bool = False
    truncated: bool = False

    @property
    def ok(self) -> bool:
        """True when the code ran to completion and exited with status 0."""
        return self.returncode == 0 and not self.timed_out and not self.memory_exceeded


def run_python(
    code: str,
    *,
    stdin: str = "",
    cpu_seconds: float = 5,
    memory_mb: int = 512,
    wall_seconds: float = 10,
    file_mb: int = 16,
    max_output: int = 1_000_000,
) -> SandboxResult:
    """Run ``code`` as ``__main__`` in a sandboxed child Python and return what happened.

    The code's failures (exceptions, timeouts, running out of memory) are reported in the
    result; :class:`SandboxError` is raised only when the child cannot be started at all.
    """
    for name, value in (("cpu_seconds", cpu_seconds), ("memory_mb", memory_mb),
                        ("wall_seconds", wall_seconds), ("file_mb", file_mb), ("max_output", max_output)):
        if not isinstance(value, (int, float)) or value <= 0:
            raise ConfigError(f"{name} must be a positive number, got {value!r}")
    limits = (max(1, int(-(-cpu_seconds // 1))), int(memory_mb) << 20, int(file_mb) << 20, 64)
    bootstrap = _BOOTSTRAP % {"limits": limits, "setup_exit": SETUP_EXIT, "memory_exit": MEMORY_EXIT}
    workdir = tempfile.mkdtemp(prefix="rerank-sandbox-")
    try:
        with open(os.path.join(workdir, "main.py"), "w", encoding="utf-8") as f:
            f.write(code)
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": workdir, "TMPDIR": workdir}
        try:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", bootstrap],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=workdir,
                env=env,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            raise SandboxError(f"could not start the sandbox interpreter {sys.executable}: {exc}") from exc
        try:
            out, err, timed_out, truncated = _communicate(proc, stdin.encode("utf-8"), wall_seconds, max_output)
        finally:
            _kill_group(proc)
        returncode = proc.wait()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    stderr = err.decode("utf-8", errors="replace")
    if returncode == SETUP_EXIT and stderr.startswith("rerank sandbox setup failed"):
        raise SandboxError(f"{stderr.strip()}: check that this platform supports resource limits")
    timed_out = timed_out or returncode in (-signal.SIGXCPU, -signal.SIGKILL)
    memory_exceeded = returncode == MEMORY_EXIT or _last_line(stderr).startswith("MemoryError")
    return SandboxResult(
        returncode=returncode,
        stdout=out.decode("utf-8", errors="replace"),
        stderr=stderr,
        timed_out=timed_out,
        memory_exceeded=memory_exceeded,
        truncated=truncated,
    )


def _communicate(
    proc: subprocess.Popen, data: bytes, wall_seconds: float, max_output: int
) -> tuple[bytes, bytes, bool, bool]:
    """Feed stdin and collect bounded stdout/stderr until the child exits or the deadline passes."""
    deadline = time.monotonic() + wall_seconds
    out, err = bytearray(), bytearray()
    buffers = {proc.stdout.fileno(): out, proc.stderr.fileno(): err}
    truncated = False
    selector = selectors.DefaultSelector()
    for stream in (proc.stdout, proc.stderr):
        selector.register(stream, selectors.EVENT_READ)
    if data:
        os.set_blocking(proc.stdin.fileno(), False)
        selector.register(proc.stdin, selectors.EVENT_WRITE)
    else:
        proc.stdin.close()
    offset = 0
    timed_out = False
    with selector:
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            for key, _ in selector.select(remaining):
                if key.fileobj is proc.stdin:
                    try:
                        offset += os.write(key.fd, data[offset : offset + 65536])
                    except BlockingIOError:
                        continue
                    except BrokenPipeError:
                        offset = len(data)
                    if offset >= len(data):
                        selector.unregister(proc.stdin)
                        proc.stdin.close()
                    continue
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    selector.unregister(key.fileobj)
                    continue
                buffer = buffers[key.fd]
                room = max_output - len(buffer)
                if len(chunk) > room:
                    truncated = True
                buffer += chunk[: max(room, 0)]
    if not timed_out:
        timed_out = not _wait_without_reaping(proc, deadline)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if not stream.closed:
            stream.close()
    return bytes(out), bytes(err), timed_out, truncated


def _wait_without_reaping(proc: subprocess.Popen, deadline: float) -> bool:
    """Wait until the child exits (leaving it a zombie so its group id stays valid); False on timeout."""
    delay = 0.001
    while True:
        try:
            if os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return True
        except ChildProcessError:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL everything left in the child's session (its process group is the child's pid)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""


# --- Calling a candidate's functions -----------------------------------------------------------

MAX_RESULT_REPR = 10_000
"""Longest repr of a call's result that is kept; longer ones are cut (and then compare unequal)."""

_DRIVER = r"""
import json, os, signal, sys
_payload = json.loads(sys.stdin.read())
_marker, _timeout, _limit = _payload["marker"], _payload["timeout"], _payload["repr_limit"]
_out = os.dup(1)
sys.stdin = open(os.devnull)
sys.stdout = open(os.devnull, "w")

class _Timeout(BaseException):
    pass

_MAX_TIMEOUTS = 3  # a call that hangs may be one bad input; three mean the code hangs on everything

def _alarm(signum, frame):
    raise _Timeout()

def _emit(record):
    os.write(_out, (_marker + json.dumps(record) + "\n").encode("utf-8", "backslashreplace"))

def _describe(exc):
    if isinstance(exc, _Timeout):
        return "timed out after %ss" % _timeout
    text = str(exc)
    return ("%s: %s" % (type(exc).__name__, text) if text else type(exc).__name__)[:300]

signal.signal(signal.SIGALRM, _alarm)
_ns = {"__name__": "__candidate__", "__builtins__": __builtins__}
_error = None
try:
    signal.setitimer(signal.ITIMER_REAL, _timeout)
    exec(compile(_payload["code"], "<candidate>", "exec"), _ns)
except SystemExit as exc:
    if exc.code not in (None, 0):
        _error = "SystemExit: %s" % (exc.code,)
except BaseException as exc:
    _error = _describe(exc)
finally:
    signal.setitimer(signal.ITIMER_REAL, 0)
_entry = _payload["entry_point"]
_emit({"loaded": _error is None, "error": _error,
       "defined": None if not _entry or _error else callable(_ns.get(_entry))})
if _error is None:
    _timeouts = 0
    for _i, _call in enumerate(_payload["calls"]):
        if _timeouts >= _MAX_TIMEOUTS:
            _emit({"i": _i, "repr": None, "error": "not run: %d earlier calls timed out" % _timeouts})
            continue
        try:
            signal.setitimer(signal.ITIMER_REAL, _timeout)
            _value = eval(compile(_call, "<example>", "eval"), _ns)
            _text = repr(_value)[:_limit]
            signal.setitimer(signal.ITIMER_REAL, 0)
            _emit({"i": _i, "repr": _text})
        except BaseException as exc:
            signal.setitimer(signal.ITIMER_REAL, 0)
            _timeouts += isinstance(exc, _Timeout)
            _emit({"i": _i, "repr": None, "error": _describe(exc)})
os._exit(0)
"""


@dataclass(frozen=True)
class CallsOutcome:
    """What loading a program and calling expressions against it gave.

    ``loaded`` is False when the program's top level raised, timed out or ran out of memory
    (``error`` says which). ``defined`` tells whether ``entry_point`` was a callable after
    loading (None when no entry point was asked about or loading failed). ``results`` holds the
    repr of each call's value, None where the call raised or timed out; ``errors`` says why.
    """

    loaded: bool
    error: str | None
    defined: bool | None
    results: tuple[str | None, ...]
    errors: tuple[str | None, ...]


def load_and_call(
    code: str,
    calls: Sequence[str],
    *,
    entry_point: str | None = None,
    timeout: float = 5.0,
    memory_mb: int = 512,
) -> CallsOutcome:
    """Run ``code`` (as a module not named ``__main__``) then evaluate each of ``calls`` in its namespace.

    Everything happens in one sandboxed child process; ``timeout`` bounds loading and each call.
    After three calls time out the rest are not run (the code is likely stuck on every input).
    The candidate's own printing is discarded.
    """
    if not isinstance(timeout, (int, float)) or timeout <= 0:
        raise ConfigError(f"timeout must be a positive number of seconds, got {timeout!r}")
    marker = f"@@rerank-{secrets.token_hex(8)}@@"
    payload = json.dumps(
        {"code": code, "calls": list(calls), "entry_point": entry_point, "marker": marker,
         "timeout": float(timeout), "repr_limit": MAX_RESULT_REPR}
    )
    budget = float(timeout) * (len(calls) + 1)
    result = run_python(_DRIVER, stdin=payload, cpu_seconds=budget + 1, wall_seconds=budget + 2, memory_mb=memory_mb)
    header: dict | None = None
    results: list[str | None] = [None] * len(calls)
    errors: list[str | None] = [None] * len(calls)
    for line in result.stdout.splitlines():
        if not line.startswith(marker):
            continue
        try:
            record = json.loads(line[len(marker):])
        except ValueError:
            continue
        if "loaded" in record and header is None:
            header = record
        elif isinstance(record.get("i"), int) and 0 <= record["i"] < len(calls):
            results[record["i"]] = record.get("repr")
            errors[record["i"]] = record.get("error")
    if header is None:
        return CallsOutcome(False, _why_it_died(result), None, tuple(results), tuple(errors))
    if not header["loaded"]:
        errors = ["the program did not load"] * len(calls)
    elif any(r is None and e is None for r, e in zip(results, errors)):
        why = _why_it_died(result)
        errors = [e if (r is not None or e is not None) else why for r, e in zip(results, errors)]
    return CallsOutcome(bool(header["loaded"]), header.get("error"), header.get("defined"), tuple(results), tuple(errors))


def run_calls(code: str, calls: Sequence[str], *, timeout: float = 5.0, memory_mb: int = 512) -> list[str | None]:
    """The repr of each call's result after loading ``code`` (None on exception or timeout).

    One sandboxed process runs the whole list; if the program itself fails to load, every
    result is None. ``timeout`` bounds loading and each call separately.
    """
    return list(load_and_call(code, calls, timeout=timeout, memory_mb=memory_mb).results)


def _why_it_died(result: SandboxResult) -> str:
    if result.memory_exceeded:
        return "ran out of memory"
    if result.timed_out:
        return "timed out"
    tail = _last_line(result.stderr)
    return f"the process died (exit status {result.returncode}{': ' + tail[:200] if tail else ''})"
