"""`rerank generate`: OpenAI Batch API input lines in, the best of N answers out, in that format.

Each input line ``{"custom_id", "method": "POST", "url": "/v1/chat/completions" | "/v1/responses",
"body"}`` is sent through a client made by :func:`rerank.wrap`, so fan-out and selection are the
middleware's own. Each answer becomes one output line ``{"id", "custom_id", "response":
{"status_code", "request_id", "body"}, "error"}`` whose ``body`` is the chosen completion with its
ranking in ``body["rerank"]``. Output lines come in completion order, each written whole with one
write and flushed, so a run killed at any moment leaves only whole lines behind (at worst a torn
last one, which ``--resume`` repairs).

Failures are lines too. An input line that cannot run (bad JSON, including NaN, integers of
more than 4,300 digits and lone surrogates; no ``custom_id``, unknown ``url``, no ``body``, a
repeated ``custom_id``) gets ``response: null`` and an ``error`` holding ``code``, ``message``
and the input ``line``; an upstream failure after the SDK's retries keeps the upstream's answer
in ``response`` and says what happened in ``error``.

A repeated ``custom_id``: the first line with it is sent; every later one gets an error line
with code ``duplicate_custom_id`` and ``custom_id: null`` (the message names the id and the
first line). So a non-null ``custom_id`` in OUTPUT always names exactly one request's own
outcome, and a consumer that keys results by ``custom_id`` never mixes two requests up.

``--resume`` keeps OUTPUT's successful answers and retries everything else: the error lines
are taken out of OUTPUT first (the file is rewritten whole, atomically) and their input lines
run again, so a request that failed upstream gets a second chance, and a line that cannot run
gets its error line again. Each ``custom_id`` still appears once.
"""

from __future__ import annotations

import inspect
import os
import shlex
import signal
import threading
import uuid
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Mapping, Sequence

from .errors import AbandonedError, AllCandidatesFailedError, ConfigError, GenerationError, InputError
from .exits import EXIT_INTERRUPTED, EXIT_WRITE_FAILED
from .jsonl import Line, encode_line, loads, parse_line, read_lines, same_file, write_error, write_whole
from .progress import Progress
from .wire import URLS, Kind, tokens_of

# Keyword arguments of the SDK's create() that are not request fields: a body key with one of
# these names is sent as a body field, never taken as an SDK option.
_SDK_OPTIONS = {"extra_headers", "extra_query", "extra_body", "timeout"}
_RETRIED_STATUSES = {408, 409, 429}


@dataclass(frozen=True)
class Task:
    """One input line ready to send: where it came from, its id, its API and its body."""

    line: int
    custom_id: str
    kind: Kind
    body: dict[str, Any]


@dataclass
class Answered:
    """What an existing OUTPUT already holds, for ``--resume``.

    ``custom_ids``: the ids answered successfully (skipped); ``retried``: error lines taken out
    of OUTPUT, whose input lines run again.
    """

    custom_ids: set[str] = field(default_factory=set)
    retried: int = 0

    def __len__(self) -> int:
        return len(self.custom_ids)


@dataclass
class Summary:
    """How a run went: lines written and failed, and whether Ctrl-C stopped it early."""

    written: int = 0
    failed: int = 0
    interrupted: bool = False
    abandoned: int = 0
    """Lines still in flight when a second Ctrl-C gave up on them (they are not written)."""
    costs: "Costs | None" = None


@dataclass
class Costs:
    """What a run's answered lines cost, summed from each line's ``cost``: candidates asked for,
    candidates received, tokens (every request's usage, judge calls included)."""

    lines: int = 0
    requested: int = 0
    received: int = 0
    tokens: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, record: Mapping[str, Any]) -> None:
        """Count one output line's ``cost`` (lines without one, such as error lines, add nothing)."""
        cost = record.get("cost")
        if not isinstance(cost, Mapping):
            return
        with self._lock:
            self.lines += 1
            self.requested += int(cost.get("requested") or 0)
            self.received += int(cost.get("received") or 0)
            self.tokens += int(cost.get("tokens") or 0)

    def summary(self) -> str:
        """One line for stderr at the end of a run."""
        return (f"{self.lines} lines answered; candidates requested {self.requested}, received {self.received}; "
                f"tokens {self.tokens:,}")


def cost_of(body: Mapping[str, Any]) -> dict[str, int] | None:
    """A line's cost from its answer's body: candidates requested and received, total tokens."""
    ledger = (body.get("rerank") or {}).get("generation") if isinstance(body.get("rerank"), Mapping) else None
    if not isinstance(ledger, Mapping):
        return None
    rounds = ledger.get("rounds") or ()
    requested = sum(int(r.get("asked") or 0) for r in rounds) if rounds else \
        int(ledger.get("candidates") or 0) + int(ledger.get("failed") or 0)
    usage = body.get("usage")
    return {"requested": requested, "received": int(ledger.get("candidates") or 0),
            "tokens": tokens_of(usage) if usage is not None else int(ledger.get("tokens") or 0)}


# --- output lines ---------------------------------------------------------------------------


def output_line(custom_id: Any, *, response: Mapping[str, Any] | None = None,
                error: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One Batch API output line."""
    return {"id": f"batch_req_{uuid.uuid4().hex}", "custom_id": custom_id,
            "response": dict(response) if response is not None else None,
            "error": dict(error) if error is not None else None}


def line_error(custom_id: Any, code: str, message: str, line: int) -> dict[str, Any]:
    """The output line for input line ``line``, which cannot be sent."""
    return output_line(custom_id, error={"code": code, "message": message, "line": line})


def encode(record: Mapping[str, Any]) -> bytes:
    """One output line as UTF-8 bytes, newline included, always valid JSON (see :func:`rerank.jsonl.encode_line`)."""
    return encode_line(dict(record))


class Writer:
    """Writes output lines whole (one write, then flush) from any thread, and counts them.

    After :meth:`close`, or once a write has failed (see :attr:`error`), nothing more is
    written: a line still in flight then is dropped whole.
    """

    def __init__(self, target: BinaryIO, *, progress: Progress | None = None) -> None:
        self._target = target
        self._progress = progress
        self._lock = threading.Lock()
        self._closed = False
        self.written = 0
        self.failed = 0
        self.error: OSError | None = None
        """Why writing failed (a full disk, a closed pipe); nothing more is written after it."""

    def write(self, record: Mapping[str, Any]) -> bool:
        """Write one line; False when the writer is closed. A failed write leaves no torn line in a file."""
        data = encode(record)
        failed = record.get("error") is not None
        with self._lock:
            if self._closed:
                return False
            try:
                write_whole(self._target, data)
            except OSError as exc:
                self.error, self._closed = exc, True
                return False
            self.written += 1
            self.failed += failed
            if self._progress is not None:
                self._progress.advance(failed=failed)
        return True

    def close(self) -> None:
        """Write nothing more (waits for a write under way to finish)."""
        with self._lock:
            self._closed = True


# --- reading input and existing output ------------------------------------------------------


def screen(line: Line, *, model: str | None = None) -> tuple[Any, Task | dict[str, Any]]:
    """The custom_id of an input line and its Task, or the error line it gets instead.

    ``model`` replaces the body's model.
    """
    if line.error:
        return None, line_error(None, "invalid_line", line.error, line.number)
    value = line.value or {}
    custom_id = value.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        shown = custom_id if isinstance(custom_id, (int, float)) and not isinstance(custom_id, bool) else None
        return None, line_error(shown, "missing_custom_id",
                                f'line {line.number} needs "custom_id": a non-empty string naming the request',
                                line.number)
    method = value.get("method", "POST")
    if method != "POST":
        return custom_id, line_error(custom_id, "invalid_method",
                                     f'line {line.number}: "method" must be "POST", got {method!r}', line.number)
    url = value.get("url")
    kind = URLS.get(url) if isinstance(url, str) else None
    if kind is None:
        return custom_id, line_error(custom_id, "invalid_url",
                                     f'line {line.number}: unknown "url" {url!r}; use {" or ".join(URLS)}',
                                     line.number)
    body = value.get("body")
    if not isinstance(body, dict):
        return custom_id, line_error(custom_id, "missing_body",
                                     f'line {line.number} needs "body": the request as a JSON object',
                                     line.number)
    body = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}  # a file cannot stream
    if model:
        body["model"] = model
    if not isinstance(body.get("model"), str) or not body["model"]:
        return custom_id, line_error(custom_id, "missing_model",
                                     f'line {line.number}: the body names no "model"; add one or pass --model',
                                     line.number)
    return custom_id, Task(line.number, custom_id, kind, body)


def read_answered(path: str | Path, *, notify: Callable[[str], None] = lambda message: None) -> Answered:
    """What OUTPUT already holds, after repairing a torn last line left by a killed run and
    taking its error lines out (their requests run again; see the module's docstring).

    A last line without its newline is completed when it is a whole output line, else cut off
    (its request runs again). A broken line anywhere else raises InputError: appending to a file
    that is no longer valid JSONL would hide the damage.
    """
    path = Path(path)
    answered = Answered()
    if not path.exists():
        return answered
    _repair_tail(path, notify)
    with open(path, "rb") as f:
        for line in read_lines(f):
            if line.empty:
                continue
            value = line.value
            if value is None or "custom_id" not in value or "error" not in value:
                reason = line.error or "it is not a batch output line (no custom_id or error)"
                raise InputError(
                    f"cannot resume: {path} line {line.number} is damaged ({reason}); fix or delete that "
                    "line, then run again with --resume (its request will be sent again)"
                )
            if value["error"] is None and isinstance(value["custom_id"], str):
                answered.custom_ids.add(value["custom_id"])
            else:
                answered.retried += 1
    if answered.retried:
        _drop_failed(path)
        notify(f"took {answered.retried} error lines out of {path}: their lines run again")
    return answered


def _drop_failed(path: Path) -> None:
    """Rewrite OUTPUT without its error lines: a copy beside it, then an atomic rename."""
    temporary = path.with_name(f".{path.name}.resume-{os.getpid()}")
    try:
        with open(path, "rb") as source, open(temporary, "wb") as copy:
            for raw in source:
                line = parse_line(raw.strip(), 1) if raw.strip() else None
                if line is not None and line.value is not None and line.value.get("error") is None:
                    copy.write(raw)
            copy.flush()
            os.fsync(copy.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _repair_tail(path: Path, notify: Callable[[str], None]) -> None:
    with open(path, "r+b") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return
        start = size
        while start > 0:  # find the start of the last line, a block at a time
            step = min(start, 1 << 16)
            f.seek(start - step)
            block = f.read(step)
            newline = block.rfind(b"\n")
            if newline >= 0:
                start = start - step + newline + 1
                break
            start -= step
        f.seek(start)
        tail = f.read()
        line = parse_line(tail.strip(), 1)
        if tail.strip() and line.value is not None and "custom_id" in line.value:
            f.seek(0, os.SEEK_END)
            f.write(b"\n")
            notify(f"completed the last line of {path}, which had lost its newline")
        else:
            f.truncate(start)
            notify(f"dropped a torn last line of {path} ({len(tail)} bytes) left by an interrupted run; "
                   "its request runs again")


# --- answering one line ---------------------------------------------------------------------


_FIELDS: dict[Kind, set[str]] = {}


def _fields(kind: Kind, create: Callable[..., Any]) -> set[str]:
    """The request fields the SDK's ``create`` takes as keyword arguments."""
    if kind not in _FIELDS:
        _FIELDS[kind] = {name for name, p in inspect.signature(create).parameters.items()
                         if p.kind is inspect.Parameter.KEYWORD_ONLY} - _SDK_OPTIONS
    return _FIELDS[kind]


def answer(client: Any, task: Task, *, max_retries: int) -> dict[str, Any]:
    """Send one task through a wrapped ``openai.OpenAI`` client; its output line, never an exception.

    Body fields the SDK's ``create`` does not name (server-specific ones such as vLLM's) go in
    ``extra_body``, so they reach the server unchanged.
    """
    import openai

    resource = client.chat.completions if task.kind == "chat" else client.responses
    known = _fields(task.kind, resource.create)
    arguments = {k: v for k, v in task.body.items() if k in known}
    extra = {k: v for k, v in task.body.items() if k not in known}
    try:
        raw = resource.with_raw_response.create(**arguments, extra_body=extra or None)
    except openai.APIStatusError as exc:
        status = exc.status_code
        retried = max_retries and (status in _RETRIED_STATUSES or status >= 500)
        tries = f" (after {max_retries} retries)" if retried else ""
        try:
            body: Any = exc.response.json()
        except ValueError:
            body = exc.response.text[:2000]
        response = {"status_code": status, "request_id": exc.request_id or _request_id(), "body": body}
        code = getattr(exc, "code", None) or f"http_{status}"
        return output_line(task.custom_id, response=response, error={
            "code": str(code), "message": f"the server answered HTTP {status}{tries}: {exc.message}"})
    except openai.APITimeoutError:
        return _failed(task, "timeout", f"the request timed out (after {max_retries} retries)")
    except openai.APIConnectionError as exc:
        cause = f": {type(exc.__cause__).__name__}: {exc.__cause__}" if exc.__cause__ else ""
        return _failed(task, "connection_error", f"cannot reach the server (after {max_retries} retries){cause}")
    except openai.APIResponseValidationError as exc:
        return _failed(task, "invalid_response", str(exc.message))
    except AllCandidatesFailedError as exc:
        return _failed(task, "all_candidates_failed", str(exc))
    except GenerationError as exc:
        return _failed(task, "generation_failed", str(exc))
    except (ConfigError, InputError, TypeError) as exc:  # TypeError: the SDK refusing the body's fields
        return _failed(task, "invalid_request", f"line {task.line}: {exc}")
    except Exception as exc:  # noqa: BLE001 - one line must not stop the run, and must not vanish
        return _failed(task, "internal_error", f"{type(exc).__name__}: {exc}")
    try:
        body = loads(raw.content)
    except (ValueError, RecursionError) as exc:
        return _failed(task, "invalid_response", f"the response body is not JSON: {exc}")
    if not isinstance(body, dict):
        return _failed(task, "invalid_response", f"the response body is {type(body).__name__}, not a JSON object")
    response = {"status_code": raw.status_code, "request_id": raw.headers.get("x-request-id") or _request_id(),
                "body": body}
    line = output_line(task.custom_id, response=response)  # what JSON cannot hold is replaced, and said so
    cost = cost_of(body)
    if cost is not None:
        line["cost"] = cost
    return line


def _failed(task: Task, code: str, message: str) -> dict[str, Any]:
    return output_line(task.custom_id, error={"code": code, "message": message})


def _request_id() -> str:
    return f"rerank-batch-{uuid.uuid4().hex}"


# --- the run --------------------------------------------------------------------------------


class Interrupts:
    """Ctrl-C during a run: the first stops taking new lines, the second abandons those in flight.

    Installed only in the main thread (elsewhere Python cannot take signals); restores the
    previous handler on exit.
    """

    def __init__(self, notify: Callable[[str], None]) -> None:
        self.stop = threading.Event()
        self.abandon = threading.Event()
        self._notify = notify
        self._announced = False
        self._previous: Any = None

    def __enter__(self) -> "Interrupts":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def _handle(self, signum: int, frame: Any) -> None:
        # Only flags here: writing from a signal handler could re-enter a write under way.
        if self.stop.is_set():
            self.abandon.set()
        self.stop.set()

    def announce(self, in_flight: int) -> None:
        """Say once, after the first Ctrl-C, what happens next."""
        if self.stop.is_set() and not self._announced:
            self._announced = True
            self._notify(f"interrupted: sending no new lines; finishing the {in_flight} in flight "
                         "(Ctrl-C again to stop at once)")


def run(client: Any, lines: Iterable[Line], writer: Writer, *, answered: Answered | None = None,
        model: str | None = None, concurrency: int = 4, max_retries: int = 2,
        interrupts: Interrupts | None = None, costs: Costs | None = None) -> Summary:
    """Answer every input line not already in ``answered``, ``concurrency`` lines at a time.

    ``client`` is a wrapped ``openai.OpenAI`` client; ``model`` overrides each body's model.
    Raises the OSError that stopped ``writer`` (a full disk, a closed pipe) once the lines in
    flight are done.
    """
    answered = answered or Answered()
    interrupts = interrupts or Interrupts(lambda message: None)
    seen: dict[str, int] = {}
    slots = threading.Semaphore(concurrency)
    in_flight: set[Future[None]] = set()
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="rerank-batch")

    def work(task: Task) -> None:
        try:
            record = answer(client, task, max_retries=max_retries)
        except BaseException as exc:  # noqa: BLE001 - answer() catches everything; this is a last guard
            record = _failed(task, "internal_error", f"{type(exc).__name__}: {exc}")
        if writer.write(record) and costs is not None:
            costs.add(record)

    try:
        for line in lines:
            if interrupts.stop.is_set() or writer.error is not None:
                break
            if line.empty:
                continue  # a blank line holds no request (a trailing one is common)
            custom_id, outcome = screen(line, model=model)
            if isinstance(custom_id, str) and custom_id in seen:
                outcome = line_error(None, "duplicate_custom_id",
                                     f"line {line.number} repeats custom_id {custom_id!r} of line "
                                     f"{seen[custom_id]}; only the first line with an id runs: give every "
                                     "request its own", line.number)
            if isinstance(custom_id, str):
                seen.setdefault(custom_id, line.number)
            if isinstance(outcome, dict):
                writer.write(outcome)
                continue
            if outcome.custom_id in answered.custom_ids:
                continue
            if not _take(slots, interrupts.stop):
                break
            future = pool.submit(work, outcome)
            future.add_done_callback(lambda _: slots.release())
            in_flight = {f for f in in_flight if not f.done()} | {future}
        in_flight = {f for f in in_flight if not f.done()}
        while in_flight and not interrupts.abandon.is_set():
            interrupts.announce(len(in_flight))
            _, in_flight = wait(in_flight, timeout=0.2)
    finally:
        abandon = bool(in_flight) and interrupts.abandon.is_set()
        if abandon:
            writer.close()  # abandoned lines are not written: --resume sends them again
        pool.shutdown(wait=not abandon, cancel_futures=True)
    if writer.error is not None:
        raise writer.error
    return Summary(written=writer.written, failed=writer.failed, interrupted=interrupts.stop.is_set(),
                   abandoned=sum(not f.done() for f in in_flight), costs=costs)


def _take(slots: threading.Semaphore, stop: threading.Event) -> bool:
    """Wait for a free slot; False (holding none) when ``stop`` is set meanwhile."""
    while not slots.acquire(timeout=0.2):
        if stop.is_set():
            return False
    if stop.is_set():
        slots.release()
        return False
    return True


def resume_command(argv: Sequence[str]) -> str:
    """The command that continues an interrupted run: the same one with ``--resume``.

    An API key given on the command line is left out (it is not echoed to the terminal).
    """
    args: list[str] = []
    skip = False
    hidden_key = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--api-key":
            skip = hidden_key = True
            continue
        if arg.startswith("--api-key=") or arg == "--overwrite":
            hidden_key = hidden_key or arg.startswith("--api-key=")
            continue
        args.append(arg)
    if "--resume" not in args:
        args.append("--resume")
    command = shlex.join(["rerank", *args])
    return command + (" --api-key KEY" if hidden_key else "")


def open_output(path: str, *, append: bool) -> BinaryIO:
    """OUTPUT for writing whole lines: an unbuffered file (appended to with ``append``), or stdout."""
    import sys

    if path == "-":
        return sys.stdout.buffer
    return open(path, "ab" if append else "wb", buffering=0)


def generate_main(
    input_file: BinaryIO, *, output: str, reranker: Any, base_url: str | None, api_key: str | None, n: int | str,
    model: str | None, concurrency: int, max_retries: int, resume: bool, overwrite: bool, quiet: bool,
    total: int | None, argv: Sequence[str], notify: Callable[[str], None],
    fanning: Mapping[str, Any] | None = None,
) -> int:
    """Everything `rerank generate` does once its options are parsed; returns the exit code.

    Usage errors (nothing was done) raise ConfigError, or InputError for a damaged OUTPUT to
    resume. ``total`` (input lines, if known) feeds the ETA; ``argv`` (the command's arguments)
    makes the resume hint told to ``notify`` after Ctrl-C. ``fanning``: more :func:`rerank.wrap`
    options (``min_n``, ``max_n``, ``strategy``, ``max_tokens_total``). At the end a summary goes
    to ``notify``: candidates requested and received, tokens spent. Raises AbandonedError when a
    second Ctrl-C gave up on requests in flight (the caller should exit at once).
    """
    import openai

    from .middleware import api_key_for, wrap

    if same_file(input_file, output):
        shown = "stdout" if output == "-" else output
        raise ConfigError(f"the output ({shown}) is the input file: writing it would destroy the input "
                          "while it is read (even with --overwrite); write to another file")
    if resume and overwrite:
        raise ConfigError("--resume continues OUTPUT and --overwrite replaces it: give one of them")
    if resume and output == "-":
        raise ConfigError("--resume needs -o FILE: it reads the answers already in that file")
    existing = Path(output) if output != "-" else None
    if existing is not None and existing.is_file() and existing.stat().st_size and not (resume or overwrite):
        raise ConfigError(f"{output} already holds answers: pass --resume to continue it, "
                          "or --overwrite to start again")
    api_key = api_key_for(api_key, base_url)
    answered = Answered()
    if resume:
        try:
            answered = read_answered(output, notify=notify if not quiet else lambda message: None)
        except OSError as exc:
            raise ConfigError(f"cannot resume: {write_error(output, exc)}") from None
        if answered and not quiet:
            notify(f"resuming: {len(answered)} lines of {output} already answered, skipping them")
    try:
        client = wrap(openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=max_retries),
                      n=n, reranker=reranker, **dict(fanning or {}))
    except ConfigError:
        raise
    except openai.OpenAIError as exc:
        raise ConfigError(str(exc)) from None
    progress = Progress("generate", total=max(total - len(answered), 0) if total is not None else None,
                        enabled=not quiet)
    try:
        target = open_output(output, append=resume)
    except OSError as exc:
        raise ConfigError(f"cannot write {write_error(output, exc)}") from None
    writer = Writer(target, progress=progress)
    try:
        with Interrupts(notify) as interrupts:
            summary = run(client, read_lines(input_file), writer, answered=answered, model=model,
                          concurrency=concurrency, max_retries=max_retries, interrupts=interrupts,
                          costs=Costs())
    except OSError as exc:
        progress.close()
        shown = "stdout" if output == "-" else output
        how = ("" if output == "-" else
               f" The lines written are whole. Once {output} can be written again (e.g. free some space), "
               f"finish with:\n  {resume_command(argv)}")
        notify(f"stopped: cannot write {write_error(shown, exc)}.{how}")
        return EXIT_WRITE_FAILED
    finally:
        if output != "-":
            target.close()
    progress.close()
    if summary.costs is not None and not quiet:
        notify(summary.costs.summary())
    if summary.interrupted:
        lost = f"; {summary.abandoned} lines in flight were abandoned" if summary.abandoned else ""
        if output == "-":
            notify(f"stopped after {summary.written} lines{lost}. The output went to stdout, so it cannot "
                   "be resumed: next time write it to a file with -o FILE")
        else:
            notify(f"stopped after {summary.written} lines{lost}. To finish, run:\n  {resume_command(argv)}")
        if summary.abandoned:
            raise AbandonedError(f"{summary.abandoned} requests abandoned in flight")
        return EXIT_INTERRUPTED
    return 1 if summary.failed else 0
