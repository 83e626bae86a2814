"""Ray Data stages: `rerank score` and `rerank generate` as one step of a Ray Data pipeline.

    import ray
    from rerank.ray import RerankStage

    ranked = ray.data.read_parquet("pools/").map_batches(
        RerankStage, fn_constructor_kwargs={"validators": ["json"]},
        compute=ray.data.ActorPoolStrategy(size=4), batch_size=128)

Each actor builds its Reranker (and loads the embedding model) once; a batch is ranked by the
code `rerank score` runs, its texts encoded together first. :class:`GenerateStage` answers
OpenAI Batch API rows by the code `rerank generate` runs. Rows come out one for one, in order;
a row that cannot be used comes out as an error row, never as a failed task.

Rows go in either as columns (the input line's keys; nested values such as ``candidates``,
``tools`` or ``body`` as Arrow lists and structs, or as JSON text) or as the input lines
themselves: columns ``line`` (its number), ``json`` (its text) and ``error`` (why it could not
be read), which is what ``--ray`` sends. They come out as columns named after the output
line's keys (nested values as JSON text, plus any other input columns unchanged), or with
``output="json"`` as a ``json`` column holding the plain command's output line and an
``error`` column.

Ray is imported only here (``pip install 'rerank[ray]'``); ``import ray`` is absolute, so it is
the Ray package, never this module.
"""

from __future__ import annotations

import json
import logging
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Literal, Mapping, Sequence, TextIO

import numpy as np
import ray
import ray.data

from .batch import Task, answer, screen
from .jsonl import Line, dumps, parse_line
from .pool_lines import DEFAULT_MAX_CANDIDATES, pools_of, score_line
from .reranker import Reranker
from .warm import warmed

Output = Literal["columns", "json"]
Batch = Mapping[str, Any]

SCORE_INPUT = ("id", "query", "context", "tools", "schema", "candidates")
"""The columns of a pool: the keys of a `rerank score` input line."""
SCORE_NESTED = ("tools", "schema", "candidates")
SCORE_OUTPUT = ("id", "best_index", "best", "profile", "all_failed", "weights", "candidates", "error")
"""The columns RerankStage writes: the keys of a `rerank score` output line."""
BATCH_INPUT = ("custom_id", "method", "url", "body")
"""The columns of an OpenAI Batch API input line."""
BATCH_NESTED = ("body",)
BATCH_OUTPUT = ("id", "custom_id", "response", "error")
"""The columns GenerateStage writes: the keys of an OpenAI Batch API output line."""
LINE_COLUMNS = ("line", "json", "error")
"""Input lines as rows: the line's number, its text, and why it could not be read (or null)."""

DEFAULT_BATCH_SIZE = 64
"""Pools per batch that ``--ray`` hands an actor."""


def plain(value: Any) -> Any:
    """A value of a Ray Data batch as plain Python: arrays become lists, NumPy scalars numbers.

    A null field of a struct is dropped: Arrow gives every struct all the fields its column
    has, so a key one row lacks comes back as null there.
    """
    if isinstance(value, np.ndarray | list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, np.generic):
        return value.item()
    return value


def lines_of(batch: Batch, columns: Sequence[str], nested: Sequence[str]) -> list[Line]:
    """The rows of a batch as input lines, from ``LINE_COLUMNS`` or else from the named ``columns``.

    A null column is left out of the line; a ``nested`` column given as JSON text is read.
    """
    size = len(next(iter(batch.values()))) if batch else 0
    if "json" in batch:
        numbers = batch["line"] if "line" in batch else range(1, size + 1)
        errors = batch["error"] if "error" in batch else [None] * size
        return [Line(int(number), None, str(error)) if not _null(error)
                else parse_line(str(text).encode("utf-8"), int(number))
                for number, text, error in zip(numbers, batch["json"], errors)]
    present = [c for c in columns if c in batch]
    if not present:
        raise ValueError(f"a batch needs the columns {', '.join(columns)} (or {', '.join(LINE_COLUMNS)}); "
                         f"got {', '.join(batch) or 'none'}")
    return [_row(number, {c: plain(batch[c][number - 1]) for c in present if not _null(batch[c][number - 1])},
                 nested) for number in range(1, size + 1)]


def _null(value: Any) -> bool:
    """Arrow's null as a batch holds it: None, or NaN in a column NumPy stores as floats."""
    return value is None or (isinstance(value, float | np.floating) and math.isnan(value))


def _row(number: int, value: dict[str, Any], nested: Sequence[str]) -> Line:
    """Row ``number`` of a batch as an input line, its nested columns given as text read as JSON
    (text that is not JSON stays text, for the stage to refuse by name)."""
    for key in nested:
        if isinstance(value.get(key), str):
            try:
                value[key] = json.loads(value[key])
            except json.JSONDecodeError:
                pass
    return Line(number, value)


def _passthrough(batch: Batch, taken: Sequence[str]) -> dict[str, Any]:
    """The columns of ``batch`` a stage does not read or write, unchanged."""
    return {k: v for k, v in batch.items() if k not in taken}


def _text(value: Any) -> str | None:
    """A nested output value as JSON text; null stays null."""
    return None if value is None else dumps(value)


def _id(value: Any) -> str | None:
    """An id as text (one Arrow column cannot mix strings and numbers)."""
    return value if value is None or isinstance(value, str) else dumps(value)


class RerankStage:
    """`rerank score` for ``Dataset.map_batches``: ranks each row's candidates, one row out per row in.

    The options are :class:`rerank.Reranker`'s (``model`` is the embedding model directory).
    ``output="columns"`` (the default) gives the columns of ``SCORE_OUTPUT`` (``best``,
    ``weights`` and ``candidates``, the per-candidate breakdown, as JSON text; ``id`` as text)
    beside the input's other columns; ``output="json"`` gives ``json``, the line `rerank score`
    writes, and ``error``.
    """

    def __init__(self, *, validators: Sequence[str] = (), scorers: Sequence[str] | None = None,
                 weights: Mapping[str, float] | None = None,
                 profile_weights: Mapping[str, Mapping[str, float]] | None = None,
                 model: str | None = None, strict: bool = False, auto_validators: bool = True,
                 unsafe_exec: bool = False, embedding_backend: str | None = None,
                 max_candidates: int = DEFAULT_MAX_CANDIDATES, output: Output = "columns") -> None:
        self.reranker = Reranker(validators=list(validators), scorers=list(scorers) if scorers else None,
                                 weights=weights, profile_weights=profile_weights, model=model, strict=strict,
                                 auto_validators=auto_validators, unsafe_exec=unsafe_exec,
                                 embedding_backend=embedding_backend)
        self.max_candidates = max_candidates
        self.output = output

    def results(self, batch: Batch) -> list[dict[str, Any]]:
        """The `rerank score` output object of every row, in order."""
        lines = lines_of(batch, SCORE_INPUT, SCORE_NESTED)
        return [score_line(self.reranker, line, max_candidates=self.max_candidates)
                for line in warmed(self.reranker, lines, pools_of(self.max_candidates))]

    def __call__(self, batch: Batch) -> dict[str, Any]:
        """Rank a batch of pools (see the class)."""
        results = self.results(batch)
        if self.output == "json":
            return {"json": [dumps(r) for r in results], "error": [r.get("error") for r in results]}
        nested = ("best", "weights", "candidates")
        columns: dict[str, list[Any]] = {
            key: [_id(r.get(key)) if key == "id" else _text(r.get(key)) if key in nested else r.get(key)
                  for r in results]
            for key in SCORE_OUTPUT
        }
        return {**_passthrough(batch, SCORE_INPUT + SCORE_OUTPUT + LINE_COLUMNS), **columns}


class GenerateStage:
    """`rerank generate` for ``Dataset.map_batches``: the best of ``n`` answers to each OpenAI Batch API row.

    Each actor holds one client made by :func:`rerank.wrap` (the N candidates and their
    selection are the middleware's) and answers up to ``concurrency`` rows of a batch at once.
    ``model`` replaces each body's model; the ranking options are :class:`RerankStage`'s, the
    embedding model being ``embedding_model``. ``output="columns"`` gives the columns of
    ``BATCH_OUTPUT`` (``response`` and ``error`` as JSON text); ``output="json"`` gives
    ``json``, the line `rerank generate` writes, and ``error``. custom_ids are not checked for
    repeats: no actor sees every row (``rerank generate --ray`` checks them as it reads INPUT).
    ``fanning``: more :func:`rerank.wrap` options (``min_n``, ``max_n``, ``strategy``,
    ``max_tokens_total``), e.g. with ``n="auto"``.
    """

    def __init__(self, *, base_url: str | None = None, api_key: str | None = None, n: int | str = 4,
                 model: str | None = None, concurrency: int = 4, max_retries: int = 2,
                 validators: Sequence[str] = (), scorers: Sequence[str] | None = None,
                 weights: Mapping[str, float] | None = None,
                 profile_weights: Mapping[str, Mapping[str, float]] | None = None,
                 embedding_model: str | None = None, strict: bool = False, unsafe_exec: bool = False,
                 embedding_backend: str | None = None, output: Output = "columns",
                 fanning: Mapping[str, Any] | None = None) -> None:
        import openai

        from .middleware import wrap

        reranker = Reranker(validators=list(validators), scorers=list(scorers) if scorers else None,
                            weights=weights, profile_weights=profile_weights, model=embedding_model, strict=strict,
                            unsafe_exec=unsafe_exec, embedding_backend=embedding_backend)
        self.client = wrap(openai.OpenAI(base_url=base_url, api_key=api_key or ("none" if base_url else None),
                                         max_retries=max_retries), n=n, reranker=reranker, **dict(fanning or {}))
        self.model = model
        self.max_retries = max_retries
        self.output = output
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="rerank-ray-generate")

    def results(self, batch: Batch) -> list[dict[str, Any]]:
        """The `rerank generate` output line of every row, in order."""
        outcomes = [screen(line, model=self.model)[1] for line in lines_of(batch, BATCH_INPUT, BATCH_NESTED)]
        tasks = [o for o in outcomes if isinstance(o, Task)]
        answers = iter(self._pool.map(lambda task: answer(self.client, task, max_retries=self.max_retries), tasks))
        return [next(answers) if isinstance(o, Task) else o for o in outcomes]

    def __call__(self, batch: Batch) -> dict[str, Any]:
        """Answer a batch of requests (see the class)."""
        results = self.results(batch)
        if self.output == "json":
            return {"json": [dumps(r) for r in results], "error": [_text(r.get("error")) for r in results]}
        columns = {key: [_text(r[key]) if key in ("response", "error") else _id(r[key]) for r in results]
                   for key in BATCH_OUTPUT}
        return {**_passthrough(batch, BATCH_INPUT + BATCH_OUTPUT + LINE_COLUMNS), **columns}


# --- `rerank score --ray` and `rerank generate --ray` -------------------------------------------


@dataclass(frozen=True)
class Job:
    """A ``--ray`` run: a stage and its options, how many actors run it, and how many rows a batch holds.

    The driver (this process) reads INPUT and writes OUTPUT, in input order; the cluster never
    needs to see either file.
    """

    stage: type[RerankStage] | type[GenerateStage]
    options: Mapping[str, Any]
    actors: int = 1
    batch_size: int = DEFAULT_BATCH_SIZE
    quiet: bool = False


def connect(address: str, *, quiet: bool = False) -> bool:
    """Join the Ray cluster at ``address`` ("local": start one on this machine, "auto": the one
    `ray start` started here). True when this call connected, so the caller disconnects after;
    False when this process was connected already."""
    if ray.is_initialized():
        return False
    ray.init(address=address, include_dashboard=False if address == "local" else None,
             logging_level=logging.WARNING if quiet else logging.INFO, log_to_driver=not quiet)
    return True


def disconnect() -> None:
    """Leave the Ray cluster that :func:`connect` joined (stopping it if it started one)."""
    ray.shutdown()


def line_rows(lines: Iterable[Line]) -> Iterator[dict[str, Any]]:
    """Input lines as ``LINE_COLUMNS`` rows (the JSON written back compactly)."""
    for line in lines:
        yield {"line": line.number, "json": None if line.value is None else dumps(line.value), "error": line.error}


def requests(lines: Iterable[Line], *, model: str | None) -> Iterator[Line]:
    """`rerank generate`'s input lines as its ``run`` takes them: blank lines left out, and a
    request repeating an earlier one's custom_id made an unreadable line saying so (no actor
    sees every line, so no stage could tell)."""
    seen: set[str] = set()
    for line in lines:
        if line.empty:
            continue
        custom_id, outcome = screen(line, model=model)
        if isinstance(outcome, Task) and custom_id in seen:
            line = Line(line.number, None, f"line {line.number} repeats custom_id {custom_id!r} of an earlier "
                                           "line; give every request its own")
        if isinstance(custom_id, str):
            seen.add(custom_id)
        yield line


def run(job: Job, source: Any, output: str, *, lines: Iterable[Line] | None = None) -> int:
    """Run ``job`` over a Parquet ``source`` (a path or binary file) or over ``lines`` (JSON lines
    already read), writing OUTPUT in input order: a ``.parquet`` path gets the stage's columns,
    anything else (- for stdout) its output lines. Returns the number of error rows written.
    Connect first (:func:`connect`)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = not job.quiet
    table = pa.Table.from_pylist(list(line_rows(lines))) if lines is not None else pq.read_table(source)
    to_parquet = output.endswith(".parquet")
    parts: Iterable[Any] = ()
    if table.num_rows:
        blocks = [table.slice(start, job.batch_size) for start in range(0, table.num_rows, job.batch_size)]
        parts = ray.data.from_arrow(blocks).map_batches(
            job.stage, fn_constructor_kwargs={**job.options, "output": "columns" if to_parquet else "json"},
            # One batch at a time per actor: an actor still loading its model leaves none queued.
            compute=ray.data.ActorPoolStrategy(size=job.actors, max_tasks_in_flight_per_actor=1),
            batch_size=job.batch_size,
        ).iter_batches(batch_size=None, batch_format="pyarrow")
    return _write_parquet(parts, output) if to_parquet else _write_lines(parts, output)


def _write_parquet(parts: Iterable[Any], output: str) -> int:
    """The stage's tables as one Parquet file; the number of error rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = list(parts)
    pq.write_table(pa.concat_tables(tables, promote_options="permissive") if tables else pa.table({}), output)
    return sum(len(t) - t.column("error").null_count for t in tables)


def _write_lines(parts: Iterable[Any], output: str) -> int:
    """The ``json`` lines of the stage's tables, each table written as it comes; the number of error rows."""
    import sys

    failed = 0
    target: TextIO = sys.stdout if output == "-" else open(output, "w", encoding="utf-8")
    try:
        for table in parts:
            target.write("".join(text + "\n" for text in table.column("json").to_pylist()))
            target.flush()
            failed += len(table) - table.column("error").null_count
    finally:
        if target is not sys.stdout:
            target.close()
    return failed
