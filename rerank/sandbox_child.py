"""The program the sandbox runs in its child interpreter: set the limits, then run the untrusted code.

It runs as ``python -I -S sandbox_child.py MODE CODE_FILE STATUS_FD LIMITS`` (isolated mode and
no ``site``: only the standard library imports, so nothing here imports rerank). ``LIMITS`` is
a JSON list ``[cpu_seconds, address_space_bytes, file_bytes, processes]``. Before any untrusted
code runs the child writes ``{"ready": true}`` on ``STATUS_FD``: the parent then knows the
sandbox itself started, and blames whatever follows on the code.

``program`` mode runs ``CODE_FILE`` as ``__main__`` (stdin, stdout and stderr are the caller's)
and closes ``STATUS_FD``. ``calls`` mode reads ``{"calls", "entry_point", "timeout"}`` as JSON
from stdin, loads ``CODE_FILE`` as a module, evaluates each call, and writes one JSON line per
step on ``STATUS_FD``: a header ``{"loaded", "error", "defined"}``, then ``{"i", "value"}`` or
``{"i", "error"}`` per call, in order, then ``{"done": true}``. Values travel as tagged plain
data (see :func:`encode`) built by looking only at exact built-in types, so a patched ``repr``
or an object with its own ``__eq__``/``__repr__`` cannot pass for another value; the expected
values never enter the sandbox, and the parent compares.
"""

from __future__ import annotations

import builtins
import json
import os
import resource
import signal
import sys
from collections.abc import Callable
from typing import Any

MEMORY_EXIT = 86
"""Exit status the child uses when the code ran out of memory."""
MAX_TIMEOUTS = 3
"""Calls that may time out before the rest are skipped (the code likely hangs on every input)."""
MAX_MESSAGE = 300
"""Longest error message kept from the code."""
MAX_NODES = 20_000
"""Most containers, numbers and strings one value may hold to be sent back."""
MAX_CHARS = 200_000
"""Most characters (or bytes) all strings of one value may hold together to be sent back."""
MAX_DEPTH = 100
"""Deepest nesting of containers sent back."""

_type, _len, _hex, _float_hex, _join, _write = type, len, hex, float.hex, "".join, os.write
_SCALARS: dict[type, str] = {int: "i", float: "f", complex: "c", str: "s", bytes: "b"}
_CONTAINERS: dict[type, str] = {list: "l", tuple: "t", set: "S", frozenset: "F", dict: "d"}


class _Timeout(BaseException):
    """Raised by the per-call alarm; a BaseException so the code's ``except Exception`` does not swallow it."""


class _NotPlain(Exception):
    """The value is, or holds, something that is not plain data (or is too large to send)."""


def set_limits(cpu: int, memory: int, file_bytes: int, processes: int) -> None:
    """CPU seconds, address space, file size, open files, processes; no core dumps."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_bytes, file_bytes))
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
    resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))


def encode(value: Any) -> Any:
    """``value`` as JSON-able tagged data, looking only at exact built-in types.

    None, True and False stand for themselves; ``["i", hex]``, ``["f", float.hex]``,
    ``["c", real hex, imag hex]``, ``["s", text]``, ``["b", hex]``; ``["l" | "t" | "S" | "F",
    items]`` for list, tuple, set, frozenset; ``["d", [[key, value], ...]]``. A value that is or
    holds anything else (a subclass, the code's own class, a generator) becomes ``["?", that
    type's name]``, one too large or too deep ``["?", "too large"]``.
    """
    budget = [MAX_NODES, MAX_CHARS]
    try:
        return _encode(value, budget, 0)
    except _NotPlain as exc:
        return ["?", exc.args[0]]
    except RecursionError:
        return ["?", "too large"]


def _encode(value: Any, budget: list[int], depth: int) -> Any:
    budget[0] -= 1
    if budget[0] < 0 or depth > MAX_DEPTH:
        raise _NotPlain("too large")
    kind = _type(value)
    if value is None or kind is bool:
        return value
    tag = _SCALARS.get(kind)
    if tag == "i":
        return [tag, _hex(value)]
    if tag == "f":
        return [tag, _float_hex(value)]
    if tag == "c":
        return [tag, _float_hex(value.real), _float_hex(value.imag)]
    if tag is not None:
        budget[1] -= _len(value)
        if budget[1] < 0:
            raise _NotPlain("too large")
        return [tag, value if tag == "s" else value.hex()]
    tag = _CONTAINERS.get(kind)
    if tag == "d":
        return [tag, [[_encode(k, budget, depth + 1), _encode(v, budget, depth + 1)] for k, v in value.items()]]
    if tag is not None:
        return [tag, [_encode(item, budget, depth + 1) for item in value]]
    name = kind.__name__
    raise _NotPlain(name if _type(name) is str else "object")


def describe(exc: BaseException, timeout: float) -> str:
    """A short message for what the code raised."""
    if isinstance(exc, _Timeout):
        return f"timed out after {timeout}s"
    name = _type(exc).__name__
    try:
        text = str(exc)
    except BaseException:  # noqa: BLE001 - the code's own __str__ may raise anything
        text = ""
    return (f"{name}: {text}" if text else name)[:MAX_MESSAGE]


def _alarm(signum: int, frame: object) -> None:
    raise _Timeout()


def run_program(code: Any) -> None:
    """Run compiled ``code`` as ``__main__``; running out of memory exits with :data:`MEMORY_EXIT`."""
    sys.argv = ["main.py"]
    sys.path.insert(0, "")
    try:
        exec(code, {"__name__": "__main__", "__builtins__": builtins})  # noqa: S102 - running it is the point
    except MemoryError:
        sys.stderr.write("MemoryError: the code exceeded the sandbox's memory limit\n")
        sys.stderr.flush()
        os._exit(MEMORY_EXIT)


def line_writer(fd: int) -> Callable[[dict[str, Any]], None]:
    """A function writing one JSON line of plain data on ``fd``, with json's C encoder when there is one.

    Taken before the code runs, so that patching ``json``, ``os.write`` or ``builtins`` later
    does not change what is written.
    """
    to_json: Callable[[dict[str, Any]], str] = json.dumps
    try:
        from _json import encode_basestring_ascii, make_encoder

        encoder = make_encoder(None, _unexpected, encode_basestring_ascii, None, ": ", ", ", False, False, True)

        def to_json(record: dict[str, Any]) -> str:
            return _join(encoder(record, 0))
    except ImportError:
        pass
    write = _write

    def emit(record: dict[str, Any]) -> None:
        write(fd, (to_json(record) + "\n").encode("ascii"))

    return emit


def _unexpected(value: Any) -> Any:
    raise TypeError(f"{_type(value).__name__} is not plain data")


def run_calls(code: Any, request: dict[str, Any], status: int) -> None:
    """Load compiled ``code`` as a module, evaluate each call, and write each step on ``status``."""
    calls, entry, timeout = request["calls"], request["entry_point"], float(request["timeout"])
    emit = line_writer(status)

    signal.signal(signal.SIGALRM, _alarm)
    namespace: dict[str, Any] = {"__name__": "__candidate__", "__builtins__": builtins}
    error = None
    try:
        signal.setitimer(signal.ITIMER_REAL, timeout)
        exec(code, namespace)  # noqa: S102 - running it is the point
    except SystemExit as exc:
        if exc.code not in (None, 0):
            error = f"SystemExit: {exc.code}"[:MAX_MESSAGE]
    except BaseException as exc:  # noqa: BLE001 - whatever the code raises is its result
        error = describe(exc, timeout)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    defined = None if not entry or error else callable(namespace.get(entry))
    emit({"loaded": error is None, "error": error, "defined": defined})
    if error is None:
        timeouts = 0
        for i, call in enumerate(calls):
            if timeouts >= MAX_TIMEOUTS:
                emit({"i": i, "error": f"not run: {timeouts} earlier calls timed out"})
                continue
            try:
                signal.setitimer(signal.ITIMER_REAL, timeout)
                value = eval(compile(call, "<example>", "eval"), namespace)
                signal.setitimer(signal.ITIMER_REAL, 0)
                record = {"i": i, "value": encode(value)}
            except BaseException as exc:  # noqa: BLE001 - a failing call is that call's result
                signal.setitimer(signal.ITIMER_REAL, 0)
                timeouts += isinstance(exc, _Timeout)
                record = {"i": i, "error": describe(exc, timeout)}
            emit(record)
    emit({"done": True})


def main(argv: list[str]) -> None:
    """Entry point inside the sandbox (see the module docstring for the arguments)."""
    mode, code_file, status, limits = argv[0], argv[1], int(argv[2]), json.loads(argv[3])
    request = json.loads(sys.stdin.read()) if mode == "calls" else None
    with open(code_file, encoding="utf-8", errors="surrogatepass") as f:
        source = f.read()
    set_limits(*limits)
    os.write(status, b'{"ready": true}\n')
    sys.stdout.reconfigure(encoding="utf-8", errors="backslashreplace")  # type: ignore[union-attr]
    sys.stderr.reconfigure(encoding="utf-8", errors="backslashreplace")  # type: ignore[union-attr]
    if mode == "program":
        os.close(status)
        run_program(compile(source, "main.py", "exec"))
        return
    sys.stdin = open(os.devnull, encoding="utf-8")  # noqa: SIM115 - for the rest of the process
    sys.stdout = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115
    try:
        compiled = compile(source, "<candidate>", "exec")
    except (SyntaxError, ValueError, MemoryError, RecursionError) as exc:
        emit = line_writer(status)
        emit({"loaded": False, "error": describe(exc, 0), "defined": None})
        emit({"done": True})
        os._exit(0)
    assert request is not None
    run_calls(compiled, request, status)
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
