"""Scale out: pools per second through `rerank score` and through `rerank score --ray` with 1 and 2 actors.

    python benchmarks/scale.py [--pools 2000] [--actors 1,2] [--source alpaca_eval-dev.jsonl]

The pools are the source's (404 alpaca_eval dev pools) repeated until there are ``--pools``,
each copy with its own id and its texts marked with the copy number, so that no copy is an
embedding-cache hit of another. Each run is the whole command, from process start to exit,
writing to a file: start-up (model loads, for --ray also starting a local Ray cluster and its
actors) is included. Peak memory is the kernel's high-water mark of resident memory: of the
`rerank score` process, and of each Ray actor (sampled from /proc while the run lasts).
Every run's output is checked to hold one line per pool and no error.

Tables go to stdout (markdown), progress to stderr, numbers to ``--json`` (default
``benchmarks/results/scale.json``). Nothing is asserted: machines are noisy.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Sequence

from common import (
    BENCH_DIR, RESULTS_DIR, argument_parser, describe_machine, machine, markdown_table, read_pools, rerank_command,
    run_measured, unlabelled_line, write_json,
)

ACTOR_MARK = "MapBatches(RerankStage)"
"""What Ray puts in an actor process's command line (``ray::MapWorker(MapBatches(RerankStage))``)."""


def copies(pools: Sequence[Any], count: int) -> list[dict[str, Any]]:
    """``count`` `rerank score` input lines: the pools again and again, copy k > 0 with id
    ``ID#k`` and " (k)" after its query and every candidate's content."""
    lines = []
    for i in range(count):
        k, index = divmod(i, len(pools))
        line = unlabelled_line(pools[index])
        if k:
            line["id"] = f"{line['id']}#{k}"
            line["query"] = f"{line['query']} ({k})"
            line["candidates"] = [{**c, "content": f"{c['content']} ({k})" if c.get("content") else c.get("content")}
                                  for c in line["candidates"]]
        lines.append(line)
    return lines


class ActorMemory:
    """Peak resident memory of every Ray actor running RerankStage, sampled from /proc until stopped."""

    def __init__(self, interval: float = 0.5) -> None:
        self.peaks: dict[int, int] = {}
        # An actor of the previous run may still be exiting: only processes started after this one count.
        self._before = {int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, args=(interval,), daemon=True)

    def __enter__(self) -> "ActorMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self, interval: float) -> None:
        while not self._stop.wait(interval):
            for proc in Path("/proc").iterdir():
                if not proc.name.isdigit() or int(proc.name) in self._before:
                    continue
                try:
                    if ACTOR_MARK not in (proc / "cmdline").read_text(errors="replace"):
                        continue
                    for row in (proc / "status").read_text().splitlines():
                        if row.startswith("VmHWM:"):
                            peak = int(row.split()[1]) * 1024
                            self.peaks[int(proc.name)] = max(self.peaks.get(int(proc.name), 0), peak)
                except (OSError, ValueError):
                    continue


def run(source: Path, output: Path, extra: Sequence[str]) -> dict[str, Any]:
    """One `rerank score` run over ``source``: time, memory, and a check of its output."""
    with ActorMemory() as actors:
        done = run_measured([*rerank_command(), "score", str(source), "-o", str(output), "-q", *extra])
    if done.returncode != 0:
        raise SystemExit(f"rerank score {' '.join(extra)} exited {done.returncode}:\n{done.stderr[-3000:]}")
    lines = [json.loads(line) for line in output.read_text().splitlines()]
    errors = sum("error" in line for line in lines)
    return {"seconds": done.seconds, "lines": len(lines), "errors": errors, "peak_rss_bytes": done.peak_rss_bytes,
            "actor_peak_rss_bytes": sorted(actors.peaks.values())}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argument_parser(__doc__)
    parser.add_argument("--pools", type=int, default=2000, help="pools per run (default 2000)")
    parser.add_argument("--actors", default="1,2", help="actor counts for --ray runs (default 1,2)")
    parser.add_argument("--source", type=Path, default=BENCH_DIR / "alpaca_eval-dev.jsonl")
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "scale.json")
    args = parser.parse_args(argv)
    info = machine()
    pools = read_pools(args.source)
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "pools.jsonl"
        source.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in copies(pools, args.pools)),
                          encoding="utf-8")
        plans: list[tuple[str, list[str]]] = [("rerank score", [])] + [(f"rerank score --ray --actors {k}", ["--ray", "--actors", str(k)])
                                         for k in map(int, args.actors.split(","))]
        for name, extra in plans:
            print(f"scale: {name} on {args.pools} pools ...", file=sys.stderr, flush=True)
            result = run(source, Path(tmp) / "out.jsonl", extra)
            runs.append({"run": name, "pools": args.pools, **result})
            print(f"scale: {name}: {result['seconds']:.1f} s", file=sys.stderr, flush=True)
    info["load_average_end"] = round(os.getloadavg()[0], 2)
    mb = 2 ** 20
    rows = [(r["run"], r["pools"], f"{r['seconds']:.1f}", f"{r['pools'] / r['seconds']:.2f}",
             f"{r['peak_rss_bytes'] / mb:.0f}",
             ", ".join(f"{p / mb:.0f}" for p in r["actor_peak_rss_bytes"]) or "-", r["errors"]) for r in runs]
    print(f"### Scale: {args.source.name}, {args.pools} pools\n")
    print(f"{describe_machine(info)}; load average {info['load_average_end']:.1f} at the end\n")
    print(markdown_table(["command", "pools", "wall s", "pools/s", "peak MB (driver)", "peak MB per actor",
                          "error lines"], rows))
    write_json(args.json, {"machine": info, "source": str(args.source), "runs": runs})
    return 0


if __name__ == "__main__":
    sys.exit(main())
