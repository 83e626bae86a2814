"""The wrapped client's wall time per call, beside one direct call and N calls made in sequence.

    python benchmarks/middleware.py [--latencies 0.2,1] [--sizes 4,8,16] [--repeats 3]

A ``rerank.testing`` server on 127.0.0.1 answers every request after an injected latency, with
candidate texts taken from the alpaca_eval pools (each timed call gets texts of its own, so the
embedding cache never helps). For each latency and each n, through the real openai SDK:

- ``direct``: one call of the plain client (one request);
- ``sequential``: n plain calls one after another, what a sequential best-of-n costs;
- ``wrapped, native n``: ``rerank.wrap(client, n=n)``, one request asking for n choices;
- ``wrapped, fan-out``: ``rerank.wrap(client, n=n, native_n=False)``, n concurrent requests
  (at most ``concurrency`` in flight, 8 by default);
- ``proxy``: the plain client pointed at ``rerank serve`` (run by uvicorn in this process,
  ``x-rerank-n: n``), which asks the server the same way as ``wrapped, native n``.

Each is the median over ``--repeats`` calls. Wrapped times include generation and reranking.
Tables go to stdout (markdown), progress to stderr, numbers to ``--json``
(default ``benchmarks/results/middleware.json``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from common import (
    BENCH_DIR, RESULTS_DIR, argument_parser, describe_machine, machine, markdown_table, read_pools, write_json,
)

import rerank
from rerank.progress import Progress
from rerank.testing import serve

MODEL = "rerank-testing"


class PoolFile:
    """Pools for the test server, each with its own query and never-reused candidate texts."""

    def __init__(self, source: Path) -> None:
        pools = read_pools(source)
        self._queries = iter(dict.fromkeys(p.request["query"] for p in pools if p.request.get("query")))
        seen: set[str] = set()
        self._texts = iter([c["content"] for p in pools for c in p.candidates
                            if isinstance(c.get("content"), str) and not (c["content"] in seen or seen.add(c["content"]))])
        self.lines: list[dict[str, Any]] = []

    def add(self, size: int) -> str:
        """A new pool of ``size`` fresh candidates; returns its query (what a call must ask)."""
        try:
            query = next(self._queries)
            texts = [next(self._texts) for _ in range(size)]
        except StopIteration:
            raise SystemExit("the source file has too few distinct queries or texts: lower --repeats or --sizes") from None
        self.lines.append({"query": query, "candidates": texts})
        return query

    def write(self, path: Path) -> Path:
        import json

        path.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in self.lines), encoding="utf-8")
        return path


def timed(call: Callable[[], Any], repeats: int) -> list[float]:
    """Wall seconds of ``repeats`` runs of ``call``."""
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        out.append(time.perf_counter() - start)
    return out


def plan(source: Path, latencies: Sequence[float], sizes: Sequence[int],
         repeats: int) -> tuple[PoolFile, dict[Any, Iterator[str]]]:
    """Every pool the run will ask for, up front (the server loads its pools when it starts)."""
    pools = PoolFile(source)
    queries: dict[Any, Iterator[str]] = {"warm-up": iter([pools.add(max(sizes))])}
    for latency in latencies:
        for size in sizes:
            queries[latency, size, "direct"] = iter([pools.add(1) for _ in range(repeats)])
            queries[latency, size, "sequential"] = iter([pools.add(size) for _ in range(repeats)])
            for mode in ("native", "fan-out", "proxy"):
                queries[latency, size, mode] = iter([pools.add(size) for _ in range(repeats)])
    return pools, queries


def run(source: Path, latencies: Sequence[float], sizes: Sequence[int], repeats: int, *,
        quiet: bool) -> list[dict[str, Any]]:
    """Measure every (latency, n) pair; one row per pair."""
    from openai import OpenAI

    from rerank.serve import Background, ServeConfig

    pools, queries = plan(source, latencies, sizes, repeats)
    rows = []
    with tempfile.TemporaryDirectory(prefix="rerank-middleware-") as tmp:
        pool_file = pools.write(Path(tmp, "pools.jsonl"))
        progress = Progress("middleware", total=len(latencies) * len(sizes), enabled=not quiet)
        for latency in latencies:
            with serve(pools=pool_file, n_mode="honour", latency=latency, model=MODEL) as server, \
                    Background(ServeConfig(upstream=server.base_url, n=max(sizes), max_n=max(sizes))) as proxy:
                plain = OpenAI(base_url=server.base_url, api_key="test", max_retries=0, timeout=120)
                through_proxy = OpenAI(base_url=proxy.base_url, api_key="test", max_retries=0, timeout=120)

                def ask(client: Any, key: Any) -> Any:
                    query = next(queries[key])
                    return client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": query}])

                if "warm-up" in queries:  # loads the embedding model before anything is timed
                    ask(rerank.wrap(plain, n=max(sizes)), "warm-up")
                    del queries["warm-up"]
                for size in sizes:
                    native = rerank.wrap(plain, n=size)
                    fan_out = rerank.wrap(plain, n=size, native_n=False)
                    direct = timed(lambda: ask(plain, (latency, size, "direct")), repeats)

                    def sequential() -> None:
                        query = next(queries[latency, size, "sequential"])
                        for _ in range(size):
                            plain.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": query}])

                    sequence = timed(sequential, repeats)
                    wrapped_native = timed(lambda: _check(ask(native, (latency, size, "native")), size), repeats)
                    wrapped_fan_out = timed(lambda: _check(ask(fan_out, (latency, size, "fan-out")), size), repeats)
                    proxied = through_proxy.with_options(default_headers={"x-rerank-n": str(size)})
                    proxy_times = timed(lambda: _check(ask(proxied, (latency, size, "proxy")), size), repeats)
                    med = {name: statistics.median(times) for name, times in
                           (("direct", direct), ("sequential", sequence), ("native", wrapped_native),
                            ("fan_out", wrapped_fan_out), ("proxy", proxy_times))}
                    rows.append({
                        "latency_s": latency, "n": size, "repeats": repeats,
                        "direct_s": med["direct"], "sequential_s": med["sequential"],
                        "wrapped_native_s": med["native"], "wrapped_fan_out_s": med["fan_out"],
                        "native_vs_direct": med["native"] / med["direct"],
                        "native_vs_sequential": med["native"] / med["sequential"],
                        "fan_out_vs_direct": med["fan_out"] / med["direct"],
                        "fan_out_vs_sequential": med["fan_out"] / med["sequential"],
                        "proxy_s": med["proxy"], "proxy_vs_direct": med["proxy"] / med["direct"],
                        "times_s": {"direct": direct, "sequential": sequence, "native": wrapped_native,
                                    "fan_out": wrapped_fan_out, "proxy": proxy_times},
                    })
                    progress.advance()
        progress.close()
    return rows


def _check(response: Any, size: int) -> Any:
    """The response, once its ranking shows that all ``size`` candidates were generated and ranked."""
    ranking = rerank.explain(response)
    if len(ranking) != size:
        raise SystemExit(f"a wrapped call ranked {len(ranking)} candidates, expected {size}")
    return response


def render(rows: Sequence[dict[str, Any]]) -> str:
    """The markdown table of one run."""
    return markdown_table(
        ["latency", "n", "direct call", "n sequential calls", "wrapped, native n", "÷ direct", "÷ sequential",
         "wrapped, fan-out", "÷ direct", "÷ sequential", "proxy (rerank serve)", "÷ direct"],
        [[f"{r['latency_s']:g} s", r["n"], f"{r['direct_s']:.2f} s", f"{r['sequential_s']:.2f} s",
          f"{r['wrapped_native_s']:.2f} s", f"{r['native_vs_direct']:.2f}×", f"{r['native_vs_sequential']:.2f}×",
          f"{r['wrapped_fan_out_s']:.2f} s", f"{r['fan_out_vs_direct']:.2f}×", f"{r['fan_out_vs_sequential']:.2f}×",
          f"{r['proxy_s']:.2f} s", f"{r['proxy_vs_direct']:.2f}×"]
         for r in rows],
    )


def parse_list(kind: type) -> Callable[[str], list[Any]]:
    def parse(text: str) -> list[Any]:
        values = [kind(part) for part in text.split(",") if part.strip()]
        if not values or min(values) <= 0:
            raise argparse.ArgumentTypeError(f"give positive numbers separated by commas, got {text!r}")
        return values
    return parse


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argument_parser(__doc__)
    parser.add_argument("--source", type=Path, default=BENCH_DIR / "alpaca_eval-dev.jsonl",
                        help="pool file the candidate texts come from (default: %(default)s)")
    parser.add_argument("--latencies", type=parse_list(float), default=[0.2, 1.0],
                        help="seconds the server waits before each answer (default: 0.2,1)")
    parser.add_argument("--sizes", type=parse_list(int), default=[4, 8, 16], help="n per call (default: 4,8,16)")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per cell, median taken (default: %(default)s)")
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "middleware.json", metavar="PATH",
                        help="where to write the numbers (default: %(default)s)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the middleware benchmark, print the table, write the JSON."""
    args = parse_args(argv)
    info = machine()
    started = time.perf_counter()
    rows = run(args.source, args.latencies, args.sizes, args.repeats, quiet=args.quiet)
    print(f"## Middleware\n\n{describe_machine(info)}; median of {args.repeats} calls per cell\n")
    print(render(rows))
    out = write_json(args.json, {"benchmark": "middleware", "machine": info, "source": args.source.name,
                                 "seconds": round(time.perf_counter() - started, 1), "rows": rows})
    print(f"numbers written to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
