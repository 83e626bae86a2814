"""What the benchmark scripts share: the labelled pools, the machine they ran on, and tables.

A benchmark pool keeps its ground truth apart from what a selector may see: ``request`` and
``candidates`` (content and tool calls only) go to selection code, ``labels`` only to metrics.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

REPO = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO.parent / "shared" / "bench"
RESULTS_DIR = REPO / "benchmarks" / "results"
REQUEST_FIELDS = ("query", "context", "tools", "schema")

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@dataclass(frozen=True)
class Pool:
    """One labelled pool: what a selector may read (``request``, ``candidates``) and the ``labels``."""

    id: str
    request: dict[str, Any]
    candidates: list[dict[str, Any]]
    labels: tuple[float, ...]
    """Ground truth, one per candidate, higher is better: for metrics only, never for selection."""


def strip_candidate(candidate: dict[str, Any]) -> dict[str, Any]:
    """The assistant message alone: ``content`` and ``tool_calls``, without label or source model."""
    return {"content": candidate.get("content"), "tool_calls": candidate.get("tool_calls")}


def request_of(line: dict[str, Any]) -> dict[str, Any]:
    """The request fields of a pool line (query, context, tools, schema) that are present."""
    return {key: line[key] for key in REQUEST_FIELDS if line.get(key) is not None}


def read_pools(path: str | os.PathLike[str], *, limit: int | None = None) -> list[Pool]:
    """The first ``limit`` pools (all when None) of a labelled JSONL file."""
    pools: list[Pool] = []
    with open(path, encoding="utf-8") as f:
        for number, raw in enumerate(f, 1):
            if limit is not None and len(pools) >= limit:
                break
            if not raw.strip():
                continue
            line = json.loads(raw)
            candidates = line.get("candidates")
            if not isinstance(candidates, list) or not candidates:
                raise ValueError(f"{path}:{number}: a pool needs a non-empty list of candidates")
            try:
                labels = tuple(float(c["label"]) for c in candidates)
            except (KeyError, TypeError, ValueError):
                raise ValueError(f"{path}:{number}: every candidate needs a numeric label") from None
            pools.append(Pool(
                id=str(line.get("id", number)),
                request=request_of(line),
                candidates=[strip_candidate(c) for c in candidates],
                labels=labels,
            ))
    return pools


def unlabelled_line(pool: Pool) -> dict[str, Any]:
    """The `rerank score` input line of a pool: id, request fields and candidates, no labels."""
    return {"id": pool.id, **pool.request, "candidates": pool.candidates}


def write_unlabelled(pools: Iterable[Pool], path: str | os.PathLike[str]) -> int:
    """Write pools as `rerank score` input; returns the number of lines written."""
    count = 0
    with open(path, "w", encoding="utf-8") as f:
        for pool in pools:
            f.write(json.dumps(unlabelled_line(pool), ensure_ascii=False) + "\n")
            count += 1
    return count


def default_pool_files() -> list[Path]:
    """Every ``*.jsonl`` file of ``../shared/bench``, sorted by name."""
    files = sorted(BENCH_DIR.glob("*.jsonl"))
    if not files:
        raise SystemExit(f"no *.jsonl pools in {BENCH_DIR}: give pool files as arguments")
    return files


def _meminfo_total() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """Where and when a benchmark ran: date, cores usable, memory, CPU, Python, torch, and the load
    average at the start (the 1-minute mean of runnable processes: above 0 means the benchmark
    shared the cores and its times are inflated)."""
    from importlib.metadata import PackageNotFoundError, version

    try:  # the version without importing torch: this process stays light for what it measures
        torch_info = {"torch": version("torch")}
    except PackageNotFoundError:
        torch_info = {}
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 0
    memory = _meminfo_total()
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": cores,
        "memory_gb": round(memory / 2**30, 1) if memory else None,
        "cpu": _cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        **torch_info,
        "load_average": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }


def describe_machine(info: dict[str, Any]) -> str:
    """One line for a table's caption: date, cores, memory, CPU, versions and load average."""
    text = f"{info['date']}, {info['cores']} cores, {info['memory_gb']} GB RAM, {info['cpu']}, Python {info['python']}"
    if "torch" in info:
        text += f", torch {info['torch']}"
    if info.get("load_average") is not None:
        text += f"; load average {info['load_average']:.1f} at the start"
        if info["load_average"] >= 0.5:
            text += " (other processes were using the cores: times are inflated)"
    return text


def argument_parser(doc: str | None) -> argparse.ArgumentParser:
    """A parser whose help shows a script's docstring: its first line, then the rest as written."""
    summary, _, details = (doc or "").strip().partition("\n\n")
    return argparse.ArgumentParser(description=summary, epilog=details,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub markdown table; the first column left-aligned, the others right-aligned."""
    align = ["---"] + ["---:"] * (len(headers) - 1)
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def write_json(path: str | os.PathLike[str], data: Any) -> Path:
    """Write ``data`` as indented JSON, creating the parent folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def rerank_command() -> list[str]:
    """How to run the `rerank` CLI of this interpreter's environment."""
    script = Path(sys.executable).with_name("rerank")
    return [str(script)] if script.exists() else [sys.executable, "-m", "rerank.cli"]


@dataclass(frozen=True)
class ProcessRun:
    """A finished child process: its wall time, exit code and peak resident memory."""

    seconds: float
    returncode: int
    peak_rss_bytes: int
    stderr: str


def run_measured(command: Sequence[str], *, timeout: float = 3600.0) -> ProcessRun:
    """Run ``command`` to the end; time it and find its peak resident memory.

    The peak is the child's own: on Linux its ``VmHWM`` read from ``/proc`` while it runs (the
    kernel's ``ru_maxrss`` would also count the image of this process that the child was forked
    from, hundreds of MB once a model is loaded here); elsewhere ``ru_maxrss``.
    """
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8") as errors:
        start = time.perf_counter()
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors)
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        peak = [0]
        watcher = threading.Thread(target=_watch_hwm, args=(proc.pid, peak), daemon=True)
        watcher.start()
        try:
            # wait4 reaps the child and returns its own rusage (RUSAGE_CHILDREN would mix all children).
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        seconds = time.perf_counter() - start
        watcher.join()
        proc.returncode = returncode = os.waitstatus_to_exitcode(status)
        errors.seek(0)
        stderr = errors.read()
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is bytes on macOS, KiB on Linux
    return ProcessRun(seconds, returncode, peak[0] or usage.ru_maxrss * scale, stderr)


def _watch_hwm(pid: int, peak: list[int]) -> None:
    """Keep ``peak[0]`` at the last VmHWM (bytes) read of process ``pid`` until it exits.

    VmHWM only grows within one program and starts again at exec, so the last value read is the
    peak of the program that ran (not of the copy of this process it was forked from)."""
    while True:
        try:
            with open(f"/proc/{pid}/status") as f:
                status = f.read()
        except OSError:
            return
        if "VmHWM:" not in status:  # exited, not yet reaped
            return
        peak[0] = int(status.split("VmHWM:", 1)[1].split()[0]) * 1024
        time.sleep(0.02)


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and its finished children so far."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation."""
    import numpy as np

    return float(np.percentile(np.asarray(values, dtype=float), q))
