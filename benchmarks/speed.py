"""Speed of every path: reranker latency per pool, `rerank score` throughput and cold start, memory.

    python benchmarks/speed.py [--source alpaca_eval-dev.jsonl] [--sizes 4,8,16] [--pools 20]

1. Latency: pools of 4, 8 and 16 candidates of about 300 word pieces each (alpaca_eval outputs,
   each text used once so the embedding cache never helps), ranked by ``Reranker().rank``;
   p50/p95 per pool and each scorer's share of the time. The baseline, timed on the same pools
   in turn, is a bare sentence-transformers ``encode`` of the query and the candidates.
2. Throughput: the first ``--throughput-pools`` (400) pools of the source through `rerank score`.
3. Cold start: `rerank score` on a one-pool file, from process start to exit.
4. Peak memory (RSS) of those `rerank score` processes.

Tables go to stdout (markdown), progress to stderr, numbers to ``--json``
(default ``benchmarks/results/speed.json``). Nothing is asserted: machines are noisy.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from common import (
    BENCH_DIR, RESULTS_DIR, Pool, argument_parser, describe_machine, machine, markdown_table, percentile, read_pools,
    rerank_command, run_measured, write_json, write_unlabelled,
)

from rerank import Reranker
from rerank.embeddings import bundled_model_path
from rerank.progress import Progress


@dataclass(frozen=True)
class LatencyPool:
    """A pool built for timing: one query and ``len(texts)`` candidate texts used nowhere else."""

    query: str
    texts: list[str]


def token_counts(texts: Sequence[str]) -> list[int]:
    """Word pieces per text, as the bundled embedding model's tokenizer counts them (untruncated)."""
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # silences "longer than the maximum sequence length"
    tokenizer = AutoTokenizer.from_pretrained(str(bundled_model_path()))
    return [len(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]


def latency_pools(pools: Sequence[Pool], sizes: Sequence[int], per_size: int, *, tokens: int,
                  window: int) -> dict[int, list[LatencyPool]]:
    """``per_size`` pools of each size, of candidate texts within ``tokens ± window`` word pieces.

    Every text appears in one pool only, so no measurement is a cache hit.
    """
    sources = [(pool.request.get("query", ""), c["content"]) for pool in pools for c in pool.candidates
               if isinstance(c.get("content"), str)]
    seen: set[str] = set()
    unique = [(q, t) for q, t in sources if not (t in seen or seen.add(t))]
    counts = token_counts([t for _, t in unique])
    fitting = [(q, t) for (q, t), n in zip(unique, counts) if abs(n - tokens) <= window]
    needed = per_size * sum(sizes)
    if len(fitting) < needed:
        raise SystemExit(
            f"only {len(fitting)} candidate texts of {tokens}±{window} word pieces in the source; "
            f"{needed} are needed for {per_size} pools of each size {list(sizes)}: lower --pools or widen --window"
        )
    out: dict[int, list[LatencyPool]] = {}
    position = 0
    for size in sizes:
        out[size] = []
        for _ in range(per_size):
            chunk = fitting[position:position + size]
            position += size
            out[size].append(LatencyPool(query=chunk[0][0], texts=[t for _, t in chunk]))
    return out


def measure_latency(groups: dict[int, list[LatencyPool]], *, quiet: bool) -> list[dict[str, Any]]:
    """Per pool size: reranker and bare-encode latency percentiles, their ratio, scorer shares."""
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    reranker = Reranker()
    bare = SentenceTransformer(str(bundled_model_path()), device="cpu")
    # Load both models and warm up torch on texts that are not timed.
    reranker.rank("warm up", ["a first warm-up answer", "a second warm-up answer"])
    bare.encode(["warm up", "a warm-up answer"], show_progress_bar=False)
    progress = Progress("latency", total=sum(len(g) for g in groups.values()), enabled=not quiet)
    rows = []
    for size, pools in groups.items():
        rerank_times, encode_times, scorer_times = [], [], {}
        for pool in pools:
            # The bare encode first: it has no cache, so it cannot warm the reranker's.
            start = time.perf_counter()
            bare.encode([pool.query] + pool.texts, batch_size=32, normalize_embeddings=True,
                        convert_to_numpy=True, show_progress_bar=False)
            encode_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            ranking = reranker.rank(pool.query, pool.texts)
            rerank_times.append(time.perf_counter() - start)
            for name, seconds in ranking.timings.items():
                scorer_times[name] = scorer_times.get(name, 0.0) + seconds
            progress.advance()
        total = sum(rerank_times)
        shares = {name: seconds / total for name, seconds in scorer_times.items()}
        shares["other"] = max(0.0, 1.0 - sum(shares.values()))
        rows.append({
            "size": size,
            "pools": len(pools),
            "p50_ms": 1000 * percentile(rerank_times, 50),
            "p95_ms": 1000 * percentile(rerank_times, 95),
            "encode_p50_ms": 1000 * percentile(encode_times, 50),
            "encode_p95_ms": 1000 * percentile(encode_times, 95),
            "ratio_p50": percentile(rerank_times, 50) / percentile(encode_times, 50),
            "shares": shares,
        })
    progress.close()
    return rows


def measure_cli(pools: Sequence[Pool], *, throughput_pools: int, cold_runs: int, quiet: bool) -> dict[str, Any]:
    """Cold start on a one-pool file (median of ``cold_runs``) and throughput on a larger file."""
    command = rerank_command()
    with tempfile.TemporaryDirectory(prefix="rerank-speed-") as tmp:
        one, many, out = Path(tmp, "one.jsonl"), Path(tmp, "many.jsonl"), Path(tmp, "out.jsonl")
        write_unlabelled(pools[:1], one)
        count = write_unlabelled(pools[:throughput_pools], many)
        cold = []
        for i in range(cold_runs):
            if not quiet:
                print(f"cold start: run {i + 1}/{cold_runs}", file=sys.stderr, flush=True)
            cold.append(_checked(run_measured(command + ["score", str(one), "-o", str(out), "-q"]), out, 1))
        if not quiet:
            print(f"throughput: `rerank score` on {count} pools", file=sys.stderr, flush=True)
        bulk = _checked(run_measured(command + ["score", str(many), "-o", str(out), "-q"]), out, count)
    cold_start = statistics.median(run.seconds for run in cold)
    return {
        "command": " ".join(Path(part).name if i == 0 else part for i, part in enumerate(command)),
        "cold_start_s": cold_start,
        "cold_start_runs_s": [run.seconds for run in cold],
        "cold_start_peak_rss_mb": max(run.peak_rss_bytes for run in cold) / 2**20,
        "throughput_pools": count,
        "throughput_wall_s": bulk.seconds,
        "throughput_pools_per_s": count / bulk.seconds,
        "steady_pools_per_s": count / max(bulk.seconds - cold_start, 1e-9),
        "throughput_peak_rss_mb": bulk.peak_rss_bytes / 2**20,
    }


def _checked(run: Any, output: Path, expected_lines: int) -> Any:
    """The run, once its exit code and output line count show it ranked every pool."""
    lines = output.read_text(encoding="utf-8").splitlines()
    if run.returncode != 0 or len(lines) != expected_lines:
        raise SystemExit(f"`rerank score` exited {run.returncode} with {len(lines)}/{expected_lines} "
                         f"output lines:\n{run.stderr[-2000:]}")
    return run


def render(result: dict[str, Any]) -> str:
    """The markdown tables of one run."""
    latency = result["latency"]
    names = list(dict.fromkeys(name for row in latency for name in row["shares"] if name != "other")) + ["other"]
    latency_table = markdown_table(
        ["candidates", "pools", "p50 ms", "p95 ms", "bare encode p50 ms", "rerank / encode"]
        + [f"{name} share" for name in names],
        [[row["size"], row["pools"], f"{row['p50_ms']:.0f}", f"{row['p95_ms']:.0f}",
          f"{row['encode_p50_ms']:.0f}", f"{row['ratio_p50']:.2f}×"]
         + [f"{100 * row['shares'].get(name, 0.0):.0f}%" for name in names] for row in latency],
    )
    cli = result["cli"]
    cli_table = markdown_table(["`" + cli["command"] + " score`", "value"], [
        ["cold start, one-pool file (median)", f"{cli['cold_start_s']:.2f} s"],
        [f"throughput, {cli['throughput_pools']}-pool file (wall, incl. start)",
         f"{cli['throughput_pools_per_s']:.2f} pools/s"],
        [f"throughput after start-up ({cli['throughput_wall_s']:.1f} s − cold start)",
         f"{cli['steady_pools_per_s']:.2f} pools/s"],
        ["peak memory, one-pool file", f"{cli['cold_start_peak_rss_mb']:.0f} MB"],
        [f"peak memory, {cli['throughput_pools']}-pool file", f"{cli['throughput_peak_rss_mb']:.0f} MB"],
    ])
    return (
        f"### Reranker latency per pool (candidates of {result['tokens']}±{result['window']} word pieces)\n\n"
        f"{latency_table}\n\n### `rerank score` from the command line ({result['source']})\n\n{cli_table}\n"
    )


def parse_sizes(text: str) -> list[int]:
    sizes = [int(part) for part in text.split(",") if part.strip()]
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("give pool sizes as positive integers, e.g. 4,8,16")
    return sizes


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argument_parser(__doc__)
    parser.add_argument("--source", type=Path, default=BENCH_DIR / "alpaca_eval-dev.jsonl",
                        help="pool file the texts come from (default: %(default)s)")
    parser.add_argument("--sizes", type=parse_sizes, default=[4, 8, 16], help="candidates per pool (default: 4,8,16)")
    parser.add_argument("--pools", type=int, default=20, help="timed pools per size (default: %(default)s)")
    parser.add_argument("--tokens", type=int, default=300, help="candidate length in word pieces (default: %(default)s)")
    parser.add_argument("--window", type=int, default=60, help="accepted ± around --tokens (default: %(default)s)")
    parser.add_argument("--throughput-pools", type=int, default=400,
                        help="pools in the throughput file (default: %(default)s)")
    parser.add_argument("--cold-runs", type=int, default=3, help="cold starts to take the median of (default: %(default)s)")
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "speed.json", metavar="PATH",
                        help="where to write the numbers (default: %(default)s)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)
    for name in ("pools", "throughput_pools", "cold_runs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run every speed measurement, print the tables, write the JSON."""
    args = parse_args(argv)
    info = machine()
    started = time.perf_counter()
    pools = read_pools(args.source)
    groups = latency_pools(pools, args.sizes, args.pools, tokens=args.tokens, window=args.window)
    latency = measure_latency(groups, quiet=args.quiet)
    import resource

    own_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    cli = measure_cli(pools, throughput_pools=args.throughput_pools, cold_runs=args.cold_runs, quiet=args.quiet)
    result = {
        "benchmark": "speed", "machine": info, "source": args.source.name, "tokens": args.tokens,
        "window": args.window, "latency": latency, "cli": cli,
        "benchmark_process_peak_rss_mb": own_peak / 2**20,
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(f"## Speed\n\n{describe_machine(info)}\n")
    print(render(result))
    out = write_json(args.json, result)
    print(f"numbers written to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
