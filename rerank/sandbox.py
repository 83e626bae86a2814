"""Run untrusted Python code in an isolated child process, with time, memory, disk and output limits.

Each run is a fresh ``python -I -S`` running :mod:`rerank.sandbox_child` inside its own
bubblewrap sandbox (:mod:`rerank.isolation` says exactly what that cuts off): own user, PID,
mount, network, IPC and UTS namespaces, a read-only view of only the Python install and system
libraries, an empty private ``/tmp`` of ``file_mb`` in all, no network and no host sockets, a
bound on processes, and every process it started killed when the run ends. Inside, the child
sets ``RLIMIT_CPU``, ``RLIMIT_AS``, ``RLIMIT_FSIZE``, ``RLIMIT_NOFILE`` and no core dumps before
the code runs (in the child, not in ``preexec_fn``, which is unsafe in a threaded parent). The
parent kills the run when the wall-clock budget is spent and keeps only the first
``max_output`` bytes of stdout and stderr.

Where isolation cannot be had (no bwrap, namespaces refused), every entry point raises
:class:`SandboxError` naming the fix, unless the caller passes ``unsafe_exec=True``: then the
child runs unisolated, with the same limits, as the caller's user, in a temporary directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from . import sandbox_child
from .errors import ConfigError, SandboxError
from .isolation import (
    PROCESS_LIMIT,
    ProcessCap,
    bwrap_command,
    host_env,
    require_isolation,
)

MEMORY_EXIT = sandbox_child.MEMORY_EXIT
"""Exit status the child uses when the code ran out of memory."""
MAX_STATUS = 16 << 20
"""Most bytes read from the child's status channel (results of every call together)."""
_READY = b'{"ready": true}\n'
_CHILD, _CODE = "/rerank/child.py", "/rerank/main.py"


@dataclass(frozen=True)
class SandboxResult:
    """What a sandboxed run produced.

    ``returncode`` is negative when a signal ended the child (``-9`` for the wall-clock kill).
    ``timed_out`` covers both the wall-clock and the CPU limit; ``memory_exceeded`` means the
    code ran out of the address space it was allowed. ``stdout``/``stderr`` are cut to the
    output bound; ``truncated`` says whether anything was dropped. ``isolated`` is False only
    for a run the caller allowed without isolation (``unsafe_exec``).
    """

    returncode: int
    stdout: str
    stderr: str
    timed_out: bool = False
    memory_exceeded: bool = False
    truncated: bool = False
    isolated: bool = True

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
    unsafe_exec: bool = False,
) -> SandboxResult:
    """Run ``code`` as ``__main__`` in a sandboxed child Python and return what happened.

    ``file_mb`` bounds everything the code writes to its private ``/tmp`` together. The code's
    failures (exceptions, timeouts, running out of memory) are reported in the result;
    :class:`SandboxError` is raised when the sandbox cannot be had or started at all.
    """
    result, _ = _run("program", code, stdin, cpu_seconds=cpu_seconds, memory_mb=memory_mb,
                     wall_seconds=wall_seconds, file_mb=file_mb, max_output=max_output, unsafe_exec=unsafe_exec)
    return result


def _run(
    mode: str,
    code: str,
    stdin: str,
    *,
    cpu_seconds: float,
    memory_mb: int,
    wall_seconds: float,
    file_mb: int,
    max_output: int,
    unsafe_exec: bool,
) -> tuple[SandboxResult, bytes]:
    """Run the child in ``mode`` on ``code``; the result and what it wrote on its status channel."""
    for name, value in (("cpu_seconds", cpu_seconds), ("memory_mb", memory_mb),
                        ("wall_seconds", wall_seconds), ("file_mb", file_mb), ("max_output", max_output)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
            raise ConfigError(f"{name} must be a positive number, got {value!r}")
    isolated = require_isolation(unsafe_exec)
    file_bytes = int(file_mb * (1 << 20))
    limits = json.dumps([max(1, int(-(-cpu_seconds // 1))), int(memory_mb) << 20, file_bytes,
                         PROCESS_LIMIT if isolated else 0])
    status_r, status_w = os.pipe()
    passed = [status_w]
    workdir = None
    try:
        if isolated:
            passed += [_memfd(_child_source()), _memfd(code.encode("utf-8", "surrogatepass"))]
            argv = bwrap_command([sys.executable, "-I", "-S", _CHILD, mode, _CODE, str(status_w), limits],
                                 files={_CHILD: passed[1], _CODE: passed[2]}, tmp_bytes=file_bytes)
            cwd, env = "/", host_env()
        else:
            workdir = tempfile.mkdtemp(prefix="rerank-sandbox-")
            with open(os.path.join(workdir, "main.py"), "w", encoding="utf-8", errors="surrogatepass") as f:
                f.write(code)
            argv = [sys.executable, "-I", "-S", os.path.abspath(sandbox_child.__file__), mode, "main.py",
                    str(status_w), limits]
            cwd, env = workdir, {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
                                 "HOME": workdir, "TMPDIR": workdir}
        cap: AbstractContextManager[ProcessCap | None] = ProcessCap() if isolated else nullcontext()
        with cap as processes:
            command = processes.command(argv) if processes else argv
            try:
                proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, cwd=cwd, env=env, start_new_session=True,
                                        close_fds=True, pass_fds=passed)
            except OSError as exc:
                raise SandboxError(f"could not start the sandbox ({command[0]}): {exc}") from exc
            for fd in passed:
                os.close(fd)
            passed = []
            try:
                out, err, status, timed_out, truncated = _communicate(
                    proc, status_r, stdin.encode("utf-8", "surrogatepass"), wall_seconds, max_output)
            finally:
                _kill_group(proc)
            returncode = proc.wait()
    finally:
        for fd in [status_r, *passed]:
            os.close(fd)
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
    stderr = err.decode("utf-8", errors="replace")
    if not status.startswith(_READY):
        why = _last_line(stderr)[:300] or (f"no answer within {wall_seconds}s" if timed_out else f"exit status {returncode}")
        raise SandboxError(f"could not start the sandbox: {why}")
    if isolated and returncode > 128:
        returncode = 128 - returncode  # bwrap reports a child killed by signal N as 128 + N
    timed_out = timed_out or returncode in (-signal.SIGXCPU, -signal.SIGKILL)
    memory_exceeded = returncode == MEMORY_EXIT or _last_line(stderr).startswith("MemoryError")
    result = SandboxResult(
        returncode=returncode,
        stdout=out.decode("utf-8", errors="replace"),
        stderr=stderr,
        timed_out=timed_out,
        memory_exceeded=memory_exceeded,
        truncated=truncated,
        isolated=isolated,
    )
    return result, status[len(_READY):]


@lru_cache(maxsize=1)
def _child_source() -> bytes:
    with open(sandbox_child.__file__, "rb") as f:
        return f.read()


def _memfd(data: bytes) -> int:
    """An anonymous in-memory file holding ``data``, positioned at its start (bwrap copies it in)."""
    fd = os.memfd_create("rerank-sandbox", 0)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _communicate(
    proc: subprocess.Popen[bytes], status_fd: int, data: bytes, wall_seconds: float, max_output: int
) -> tuple[bytes, bytes, bytes, bool, bool]:
    """Feed stdin and collect bounded stdout, stderr and status until the child exits or the deadline passes."""
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    deadline = time.monotonic() + wall_seconds
    out, err, status = bytearray(), bytearray(), bytearray()
    buffers = {proc.stdout.fileno(): (out, max_output), proc.stderr.fileno(): (err, max_output),
               status_fd: (status, MAX_STATUS)}
    truncated = False
    selector = selectors.DefaultSelector()
    for fd in buffers:
        selector.register(fd, selectors.EVENT_READ)
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
                buffer, limit = buffers[key.fd]
                room = limit - len(buffer)
                if len(chunk) > room:
                    truncated = truncated or key.fd != status_fd
                buffer += chunk[: max(room, 0)]
    if not timed_out:
        timed_out = not _wait_without_reaping(proc, deadline)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if not stream.closed:
            stream.close()
    return bytes(out), bytes(err), bytes(status), timed_out, truncated


def _wait_without_reaping(proc: subprocess.Popen[bytes], deadline: float) -> bool:
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


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
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
"""Longest repr of a call's result that is kept; longer ones are cut."""
MAX_MESSAGE = sandbox_child.MAX_MESSAGE
"""Longest error message kept from the sandboxed code."""
TAMPERED = "the code wrote to the sandbox's result channel"


class Opaque:
    """A call's value that is not plain data (a subclass, the code's own class, a generator, ...).

    It never equals anything: the name of its type is all that came back.
    """

    def __init__(self, type_name: str) -> None:
        self.type_name = type_name

    def __repr__(self) -> str:
        return f"<{self.type_name} object>"


@dataclass(frozen=True)
class CallsOutcome:
    """What loading a program and calling expressions against it gave.

    ``loaded`` is False when the program's top level raised, timed out or ran out of memory
    (``error`` says which). ``defined`` tells whether ``entry_point`` was a callable after
    loading (None when no entry point was asked about or loading failed). ``values`` holds each
    call's value, rebuilt in this process from plain data (:class:`Opaque` where the value was
    not plain data), ``results`` its repr (cut to :data:`MAX_RESULT_REPR`); both are None where
    the call raised or timed out, ``results`` also for an opaque value; ``errors`` says why.
    """

    loaded: bool
    error: str | None
    defined: bool | None
    results: tuple[str | None, ...]
    errors: tuple[str | None, ...]
    values: tuple[Any, ...] = ()


def load_and_call(
    code: str,
    calls: Sequence[str],
    *,
    entry_point: str | None = None,
    timeout: float = 5.0,
    memory_mb: int = 512,
    unsafe_exec: bool = False,
) -> CallsOutcome:
    """Run ``code`` (as a module not named ``__main__``) then evaluate each of ``calls`` in its namespace.

    Everything happens in one sandboxed child process; ``timeout`` bounds loading and each call.
    After three calls time out the rest are not run (the code is likely stuck on every input).
    The candidate's own printing is discarded. Results come back on a channel of their own,
    step by step; a run whose channel holds anything but the child's steps in order (the code
    wrote to it) counts as not loaded.
    """
    if not isinstance(timeout, (int, float)) or timeout <= 0:
        raise ConfigError(f"timeout must be a positive number of seconds, got {timeout!r}")
    request = json.dumps({"calls": list(calls), "entry_point": entry_point, "timeout": float(timeout)})
    budget = float(timeout) * (len(calls) + 1)
    result, status = _run("calls", code, request, cpu_seconds=budget + 1, memory_mb=memory_mb,
                          wall_seconds=budget + 2, file_mb=16, max_output=100_000, unsafe_exec=unsafe_exec)
    try:
        header, steps, done = _read_steps(status, len(calls))
        values = [_decode(step["value"]) if "value" in step else None for step in steps]
    except (ValueError, TypeError, IndexError, KeyError, RecursionError, OverflowError):
        return _not_loaded(TAMPERED, TAMPERED, len(calls))
    if header is None:
        died = _why_it_died(result)
        return _not_loaded(died, died, len(calls))
    if not header["loaded"]:
        return _not_loaded(_message(header["error"]) or "it raised", "the program did not load", len(calls))
    why: str | None = None if done else _why_it_died(result)
    values += [None] * (len(calls) - len(steps))
    results: list[str | None] = [None] * len(calls)
    errors: list[str | None] = [why] * len(calls)
    for i, step in enumerate(steps):
        value = values[i]
        if isinstance(value, Opaque):
            errors[i] = f"returned a {value.type_name} object, not a plain value"
        elif "value" in step:
            results[i], errors[i] = _shown(value, step["value"]), None
        else:
            errors[i] = _message(step["error"]) or "an error"
    defined = header["defined"]
    return CallsOutcome(True, None, defined if isinstance(defined, bool) else None, tuple(results),
                        tuple(errors), tuple(values))


def run_calls(
    code: str, calls: Sequence[str], *, timeout: float = 5.0, memory_mb: int = 512, unsafe_exec: bool = False
) -> list[str | None]:
    """The repr of each call's result after loading ``code`` (None on exception or timeout).

    One sandboxed process runs the whole list; if the program itself fails to load, every
    result is None. ``timeout`` bounds loading and each call separately.
    """
    return list(load_and_call(code, calls, timeout=timeout, memory_mb=memory_mb, unsafe_exec=unsafe_exec).results)


def _read_steps(status: bytes, count: int) -> tuple[dict[str, Any] | None, list[dict[str, Any]], bool]:
    """The header, the call steps and whether the end mark came; ValueError when the channel was tampered with.

    The child writes exactly: one header, then step ``i`` for ``i = 0, 1, ...``, then the end
    mark, and nothing after; a run cut short may stop anywhere, but only at a line's end.
    """
    lines = status.split(b"\n")
    if lines[-1]:
        raise ValueError("a torn line")
    header: dict[str, Any] | None = None
    steps: list[dict[str, Any]] = []
    done = False
    for line in lines[:-1]:
        record = json.loads(line)  # ValueError or RecursionError when the code wrote here
        if not isinstance(record, dict) or done:
            raise ValueError("not a step")
        if header is None:
            if set(record) != {"loaded", "error", "defined"}:
                raise ValueError("no header")
            header = record
        elif record.get("done") is True and len(record) == 1:
            done = True
        elif record.get("i") == len(steps) < count and set(record) in ({"i", "value"}, {"i", "error"}):
            steps.append(record)
        else:
            raise ValueError("a step out of order")
    if done and header is not None and header.get("loaded") and len(steps) != count:
        raise ValueError("steps missing before the end mark")
    return header, steps, done


def _decode(data: Any) -> Any:
    """A value rebuilt from the child's tagged plain data (see :func:`rerank.sandbox_child.encode`)."""
    if data is None or isinstance(data, bool):
        return data
    if not isinstance(data, list) or not data or not isinstance(data[0], str):
        raise ValueError("not tagged data")
    tag, rest = data[0], data[1:]
    if tag == "i":
        return int(rest[0], 16)  # base 16 has no digit limit
    if tag == "f":
        return float.fromhex(rest[0])
    if tag == "c":
        return complex(float.fromhex(rest[0]), float.fromhex(rest[1]))
    if tag == "s" and isinstance(rest[0], str):
        return rest[0]
    if tag == "b":
        return bytes.fromhex(rest[0])
    if tag == "d":
        return {_decode(k): _decode(v) for k, v in rest[0]}
    if tag in _SEQUENCES:
        return _SEQUENCES[tag](_decode(item) for item in rest[0])
    if tag == "?":
        return Opaque(str(rest[0])[:100])
    raise ValueError(f"unknown tag {tag!r}")


_SEQUENCES: dict[str, Any] = {"l": list, "t": tuple, "S": set, "F": frozenset}


def _shown(value: Any, data: Any) -> str:
    """The repr of a call's value, cut to :data:`MAX_RESULT_REPR`; equal values show the same."""
    try:
        return repr(value)[:MAX_RESULT_REPR]
    except ValueError:  # an int over sys.get_int_max_str_digits() digits: name it by its plain data
        digest = hashlib.sha256(json.dumps(data).encode("ascii", "backslashreplace")).hexdigest()
        return f"<{type(value).__name__} holding an integer too long to print, sha256 {digest}>"


def _message(text: Any) -> str | None:
    return None if text is None else str(text)[:MAX_MESSAGE]


def _not_loaded(error: str, each: str, count: int) -> CallsOutcome:
    return CallsOutcome(False, error, None, (None,) * count, (each,) * count, (None,) * count)


def _why_it_died(result: SandboxResult) -> str:
    if result.memory_exceeded:
        return "ran out of memory"
    if result.timed_out:
        return "timed out"
    tail = _last_line(result.stderr)
    return f"the process died (exit status {result.returncode}{': ' + tail[:200] if tail else ''})"
