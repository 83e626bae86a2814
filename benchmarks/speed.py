"""Speed of every embedding backend side by side: latency per pool, throughput, cold start, memory.

    python benchmarks/speed.py [--backends torch,onnx,static] [--source alpaca_eval-dev.jsonl] [--sizes 4,8,16]

1. Latency: pools of 4, 8 and 16 candidates of about 300 word pieces each (alpaca_eval outputs,
   each text used once so the embedding cache never helps), ranked by
   ``Reranker(embedding_backend=B).rank`` for every backend B in turn; p50/p95 per pool, and
   the time each scorer takes (embedding scorers beside BM25, validators and agreement). The
   baseline, timed on the same pools, is a bare sentence-transformers (torch) ``encode`` of the
   query and the candidates.
2. Throughput through the Python API: ``Reranker.rank`` on the first ``--throughput-pools``
   pools of the source, one by one (cache emptied first), and the same pools through
   ``rerank.warm.warmed`` (texts encoded ahead in large batches, as `rerank score` does).
3. `rerank score --embedding-backend B`: cold start on a one-pool file (after
   `rerank prepare`), throughput on the ``--throughput-pools`` file, peak memory (RSS) of each.
4. Quality: each backend's default gain per dev file, read from
   ``benchmarks/results/quality-B.json`` when `quality.py --embedding-backend B --json ...`
   wrote it (this script does not re-run it).
5. Middleware: ``rerank.wrap(client, n=8)`` against a ``rerank.testing`` server answering after
   0.2 s, per backend: the wrapped call's wall time minus one direct call's, beside the scoring
   time (``Reranker.measure`` + ``combine``) measured inside the same wrapped calls.
6. Whether a tools pool imports torch under the default backend (a fresh interpreter).
7. The issue's targets (issue 18) beside the figures: met or not met, the default backend marked.

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
from rerank.embeddings import BACKENDS, DEFAULT_BACKEND, bundled_model_path
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
    unique: list[tuple[str, str]] = []
    seen: set[str] = set()
    for query, text in sources:
        if text not in seen:
            seen.add(text)
            unique.append((query, text))
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


def measure_latency(groups: dict[int, list[LatencyPool]], backends: Sequence[str], *,
                    quiet: bool) -> list[dict[str, Any]]:
    """Per backend and pool size: rerank latency percentiles, the bare torch encode's, their
    ratio, and each scorer's mean time per pool."""
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    rerankers = {backend: Reranker(embedding_backend=backend) for backend in backends}
    bare = SentenceTransformer(str(bundled_model_path()), device="cpu")
    # Load every model and warm up on texts that are not timed.
    for reranker in rerankers.values():
        reranker.rank("warm up", ["a first warm-up answer", "a second warm-up answer"])
    bare.encode(["warm up", "a warm-up answer"], show_progress_bar=False)
    progress = Progress("latency", total=sum(len(g) for g in groups.values()) * (1 + len(rerankers)),
                        enabled=not quiet)
    rows = []
    for size, pools in groups.items():
        encode_times: list[float] = []
        times: dict[str, list[float]] = {b: [] for b in backends}
        scorer_times: dict[str, dict[str, float]] = {b: {} for b in backends}
        for pool in pools:  # the bare encode first: it has no cache, so it cannot warm the rerankers'
            start = time.perf_counter()
            bare.encode([pool.query] + pool.texts, batch_size=32, normalize_embeddings=True,
                        convert_to_numpy=True, show_progress_bar=False)
            encode_times.append(time.perf_counter() - start)
            progress.advance()
        # One backend at a time over the pools: torch's OpenMP threads spin on after each encode
        # and would be timed with the next backend's pool.
        for backend, reranker in rerankers.items():
            for pool in pools:
                start = time.perf_counter()
                ranking = reranker.rank(pool.query, pool.texts)
                times[backend].append(time.perf_counter() - start)
                for name, seconds in ranking.timings.items():
                    scorer_times[backend][name] = scorer_times[backend].get(name, 0.0) + seconds
                progress.advance()
        for backend in backends:
            total = sum(times[backend])
            shares = {name: seconds / total for name, seconds in scorer_times[backend].items()}
            shares["other"] = max(0.0, 1.0 - sum(shares.values()))
            rows.append({
                "backend": backend,
                "size": size,
                "pools": len(pools),
                "p50_ms": 1000 * percentile(times[backend], 50),
                "p95_ms": 1000 * percentile(times[backend], 95),
                "encode_p50_ms": 1000 * percentile(encode_times, 50),
                "encode_p95_ms": 1000 * percentile(encode_times, 95),
                "ratio_p50": percentile(times[backend], 50) / percentile(encode_times, 50),
                "shares": shares,
                "scorer_ms": {name: 1000 * seconds / len(pools) for name, seconds in scorer_times[backend].items()},
            })
    progress.close()
    return rows


SIGNAL_FILES = {"alpaca_eval": [], "bfcl": [], "faithbench": [], "humaneval": ["python"]}
"""Dev files whose pools show every profile's signals (chat, tools, grounded, code), with the
validators a user would switch on."""


def measure_signals(backends: Sequence[str], pools_per_file: int, *, quiet: bool) -> list[dict[str, Any]]:
    """Mean time per pool of each scorer and validator on real pools of every profile, per backend:
    what BM25, validators and agreement cost beside the embedding scorers."""
    from rerank.embeddings import get_embedder

    rows = []
    for name, validators in SIGNAL_FILES.items():
        path = BENCH_DIR / f"{name}-dev.jsonl"
        if not path.is_file():
            continue
        pools = read_pools(path, limit=pools_per_file)
        for backend in backends:
            if not quiet:
                print(f"signals: {name}, {backend}", file=sys.stderr, flush=True)
            reranker = Reranker(validators=validators, embedding_backend=backend)
            get_embedder(None, backend).clear()
            totals: dict[str, float] = {}
            wall = 0.0
            for pool in pools:
                start = time.perf_counter()
                ranking = reranker.rank(pool.request, pool.candidates)
                wall += time.perf_counter() - start
                for signal, seconds in ranking.timings.items():
                    totals[signal] = totals.get(signal, 0.0) + seconds
            rows.append({"file": name, "backend": backend, "pools": len(pools), "profile": ranking.profile,
                         "total_ms": 1000 * wall / len(pools),
                         "signal_ms": {k: 1000 * v / len(pools) for k, v in totals.items()}})
    return rows


def measure_api(pools: Sequence[Pool], backends: Sequence[str], *, quiet: bool) -> dict[str, dict[str, Any]]:
    """Pools per second through ``Reranker.rank``, one pool at a time and warmed ahead in batches;
    every backend starts from an empty text cache (its model already loaded)."""
    from rerank.embeddings import get_embedder
    from rerank.warm import warmed

    out = {}
    for backend in backends:
        reranker = Reranker(embedding_backend=backend)
        embedder = get_embedder(None, backend)
        if not quiet:
            print(f"python API: {backend} on {len(pools)} pools", file=sys.stderr, flush=True)
        embedder.clear()
        start = time.perf_counter()
        for pool in pools:
            reranker.rank(pool.request, pool.candidates)
        one_by_one = time.perf_counter() - start
        embedder.clear()
        start = time.perf_counter()
        for pool in warmed(reranker, pools, lambda p: (p.request, p.candidates)):
            reranker.rank(pool.request, pool.candidates)
        batched = time.perf_counter() - start
        out[backend] = {"pools": len(pools), "pools_per_s": len(pools) / one_by_one,
                        "warmed_pools_per_s": len(pools) / batched}
    return out


def measure_cli(pools: Sequence[Pool], backend: str, *, throughput_pools: int, cold_runs: int,
                quiet: bool) -> dict[str, Any]:
    """`rerank score --embedding-backend BACKEND`: cold start on a one-pool file (median of
    ``cold_runs``, after `rerank prepare`) and throughput on a larger file."""
    command = rerank_command()
    prepared = run_measured(command + ["prepare", "--embedding-backend", backend])
    if prepared.returncode != 0:
        raise SystemExit(f"`rerank prepare --embedding-backend {backend}` failed:\n{prepared.stderr[-2000:]}")
    with tempfile.TemporaryDirectory(prefix="rerank-speed-") as tmp:
        one, many, out = Path(tmp, "one.jsonl"), Path(tmp, "many.jsonl"), Path(tmp, "out.jsonl")
        write_unlabelled(pools[:1], one)
        count = write_unlabelled(pools[:throughput_pools], many)
        score = command + ["score", "--embedding-backend", backend, "-q", "-o", str(out)]
        cold = []
        for i in range(cold_runs):
            if not quiet:
                print(f"cold start ({backend}): run {i + 1}/{cold_runs}", file=sys.stderr, flush=True)
            cold.append(_checked(run_measured(score + [str(one)]), out, 1))
        if not quiet:
            print(f"throughput ({backend}): `rerank score` on {count} pools", file=sys.stderr, flush=True)
        bulk = _checked(run_measured(score + [str(many)]), out, count)
    cold_start = statistics.median(run.seconds for run in cold)
    return {
        "command": " ".join(Path(part).name if i == 0 else part for i, part in enumerate(command)),
        "prepare_s": prepared.seconds,
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


class TimedReranker(Reranker):
    """A Reranker that records how long each ranking (measure + combine) takes."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.spent: list[float] = []
        self._started = 0.0

    def measure(self, *args: Any, **kwargs: Any) -> Any:
        self._started = time.perf_counter()
        return super().measure(*args, **kwargs)

    def combine(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().combine(*args, **kwargs)
        finally:
            self.spent.append(time.perf_counter() - self._started)


def measure_middleware(source: Path, backends: Sequence[str], *, n: int, latency: float, repeats: int,
                       quiet: bool) -> dict[str, dict[str, Any]]:
    """Per backend: wall time of ``rerank.wrap(client, n=n)`` calls (native n) and of plain calls to
    a test server answering after ``latency`` s, and the scoring time inside each wrapped call."""
    import rerank
    from middleware import MODEL, PoolFile
    from openai import OpenAI

    from rerank.testing import serve

    pools = PoolFile(source)
    queries = {b: ([pools.add(n) for _ in range(repeats + 1)], [pools.add(1) for _ in range(repeats)])
               for b in backends}
    out = {}
    with tempfile.TemporaryDirectory(prefix="rerank-speed-") as tmp:
        pool_file = pools.write(Path(tmp, "pools.jsonl"))
        with serve(pools=pool_file, n_mode="honour", latency=latency, model=MODEL) as server:
            plain = OpenAI(base_url=server.base_url, api_key="test", max_retries=0, timeout=300)
            for backend in backends:
                if not quiet:
                    print(f"middleware: {backend}, n={n}, {latency} s upstream", file=sys.stderr, flush=True)
                reranker = TimedReranker(embedding_backend=backend)
                wrapped = rerank.wrap(plain, n=n, reranker=reranker)
                wrapped_queries, direct_queries = queries[backend]

                def ask(client: Any, query: str) -> float:
                    start = time.perf_counter()
                    client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": query}])
                    return time.perf_counter() - start

                ask(wrapped, wrapped_queries[0])  # loads the backend: not timed
                reranker.spent.clear()
                direct = [ask(plain, q) for q in direct_queries]
                wrapped_times = [ask(wrapped, q) for q in wrapped_queries[1:]]
                scoring = list(reranker.spent)
                added = [w - statistics.median(direct) for w in wrapped_times]
                out[backend] = {
                    "n": n, "latency_s": latency, "repeats": repeats,
                    "direct_s": statistics.median(direct), "wrapped_s": statistics.median(wrapped_times),
                    "added_s": statistics.median(added), "scoring_s": statistics.median(scoring),
                    "added_over_scoring": statistics.median(added) / max(statistics.median(scoring), 1e-9),
                    "times_s": {"direct": direct, "wrapped": wrapped_times, "scoring": scoring},
                }
    return out


def tools_pool_imports_torch(backend: str | None = None) -> bool:
    """Whether ranking a bfcl (tools) pool with the default reranker imports torch, in a fresh interpreter."""
    import json
    import os
    import subprocess

    path = BENCH_DIR / "bfcl-dev.jsonl"
    option = "" if backend is None else f"embedding_backend={backend!r}"
    code = f"""
import json, sys
from rerank import Reranker
line = json.loads(open({str(path)!r}).readline())
pool = [{{"content": c.get("content"), "tool_calls": c.get("tool_calls")}} for c in line["candidates"]]
ranking = Reranker({option}).rank({{"query": line["query"], "tools": line["tools"]}}, pool)
assert ranking.profile == "tools", ranking.profile
print(json.dumps("torch" in sys.modules))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if done.returncode != 0:
        raise SystemExit(f"ranking a tools pool failed:\n{done.stderr[-2000:]}")
    return bool(json.loads(done.stdout.strip().splitlines()[-1]))


def read_quality(backends: Sequence[str], folder: Path) -> dict[str, dict[str, float | None]]:
    """Each backend's default gain per file and validators, from ``folder/quality-BACKEND.json``
    and ``folder/quality-BACKEND-*.json`` (runs split over several files)."""
    import json

    out: dict[str, dict[str, float | None]] = {}
    for backend in backends:
        paths = [folder / f"quality-{backend}.json", *sorted(folder.glob(f"quality-{backend}-*.json"))]
        for path in (p for p in paths if p.is_file()):
            for run in json.loads(path.read_text(encoding="utf-8"))["runs"]:
                key = f"{run['file']} [{', '.join(run['validators']) or 'none'}]"
                rows = {row["selector"]: row for row in run.get("rows", [])}
                out.setdefault(backend, {})[key] = rows["default"]["gain"] if "default" in rows else None
    return out


TARGETS = "issue 18's targets"


def done_when(result: dict[str, Any]) -> list[list[str]]:
    """Rows of (target, backend, measured, met / not met) for the issue's speed targets."""
    rows = []
    default = result.get("default_backend", DEFAULT_BACKEND)
    latency = {(row["backend"], row["size"]): row for row in result["latency"]}
    if "tools_pool_imports_torch" in result:
        imports = result["tools_pool_imports_torch"]
        rows.append(["a tools pool never imports torch", f"{default} (default)",
                     "imports torch" if imports else "torch not imported", "not met" if imports else "met"])
    for backend in result["backends"]:
        row8 = latency.get((backend, 8))
        cli = result["cli"][backend]
        fast = backend == "static"  # the "fast mode" targets: the static backend
        checks = []
        if row8:
            checks.append(("pool of 8: p50 ≤ 0.3× bare torch encode", f"{row8['ratio_p50']:.3f}×", row8["ratio_p50"] <= 0.3))
            if fast:
                checks.append(("pool of 8: p50 ≤ 5 ms (fast mode)", f"{row8['p50_ms']:.1f} ms", row8["p50_ms"] <= 5))
        steady = cli["steady_pools_per_s"]
        checks += [
            ("`rerank score` cold start ≤ 1.5 s", f"{cli['cold_start_s']:.2f} s", cli["cold_start_s"] <= 1.5),
            ("`rerank score` ≥ 20 pools/s after start-up", f"{steady:.1f} pools/s", steady >= 20),
        ]
        if fast:
            checks.append(("`rerank score` ≥ 200 pools/s after start-up (fast mode)", f"{steady:.1f} pools/s", steady >= 200))
        checks.append(("peak memory ≤ 600 MB", f"{cli['throughput_peak_rss_mb']:.0f} MB", cli["throughput_peak_rss_mb"] <= 600))
        quality = result["quality"].get(backend)
        torch_quality = result["quality"].get("torch")
        if quality and torch_quality and backend != "torch":
            gaps = [torch_quality[k] - v for k, v in quality.items()
                    if v is not None and torch_quality.get(k) is not None]
            if gaps:
                compared = f"worst gap {max(gaps):+.3f} over the {len(gaps)} file(s) both backends have"
                checks.append(("gain within 0.02 of torch on every dev file", compared, max(gaps) <= 0.02))
        middleware = result.get("middleware", {}).get(backend)
        if middleware:
            checks.append((f"wrapped call n={middleware['n']}, {middleware['latency_s']:g} s upstream: wall − direct "
                           f"≤ 1.2 × scoring", f"{1000 * middleware['added_s']:.0f} ms added, "
                           f"{1000 * middleware['scoring_s']:.0f} ms scoring ({middleware['added_over_scoring']:.2f}×)",
                           middleware["added_over_scoring"] <= 1.2))
        label = f"{backend} (default)" if backend == default else backend
        rows += [[target, label, value, "met" if ok else "not met"] for target, value, ok in checks]
    return rows


def render(result: dict[str, Any]) -> str:
    """The markdown tables of one run."""
    latency = result["latency"]
    names = list(dict.fromkeys(name for row in latency for name in row["scorer_ms"]))
    latency_table = markdown_table(
        ["backend", "candidates", "pools", "p50 ms", "p95 ms", "bare torch encode p50 ms", "rerank / encode"]
        + [f"{name} ms" for name in names],
        [[row["backend"], row["size"], row["pools"], f"{row['p50_ms']:.1f}", f"{row['p95_ms']:.1f}",
          f"{row['encode_p50_ms']:.0f}", f"{row['ratio_p50']:.3f}×"]
         + [f"{row['scorer_ms'].get(name, 0.0):.1f}" for name in names] for row in latency],
    )
    cli_rows = []
    for backend in result["backends"]:
        cli, api = result["cli"][backend], result["api"][backend]
        cli_rows.append([
            backend, f"{cli['prepare_s']:.1f} s", f"{cli['cold_start_s']:.2f} s",
            f"{cli['steady_pools_per_s']:.1f}", f"{cli['throughput_pools_per_s']:.1f}",
            f"{api['pools_per_s']:.1f}", f"{api['warmed_pools_per_s']:.1f}",
            f"{cli['cold_start_peak_rss_mb']:.0f} MB", f"{cli['throughput_peak_rss_mb']:.0f} MB",
        ])
    first = result["cli"][result["backends"][0]]
    cli_table = markdown_table(
        ["backend", "`rerank prepare`", "cold start, one pool (median)", "`rerank score` pools/s after start-up",
         "pools/s incl. start", "API `rank` pools/s", "API warmed pools/s", "peak RSS, one pool",
         f"peak RSS, {first['throughput_pools']} pools"], cli_rows)
    text = (
        f"### Reranker latency per pool (candidates of {result['tokens']}±{result['window']} word pieces; "
        f"ms per pool per scorer beside)\n\n{latency_table}\n\n"
        f"### Throughput, cold start and memory ({result['source']}, {first['throughput_pools']} pools)\n\n{cli_table}\n"
    )
    if result["signals"]:
        embedding = {"relevance", "grounding", "consensus"}
        lines = []
        for row in result["signals"]:
            spent = row["signal_ms"]
            encoded = sum(v for k, v in spent.items() if k in embedding)
            others = ", ".join(f"{k} {v:.1f}" for k, v in spent.items() if k not in embedding)
            lines.append([row["file"], row["profile"], row["backend"], f"{row['total_ms']:.1f}",
                          f"{encoded:.1f}", others or "-",
                          f"{sum(v for k, v in spent.items() if k not in embedding) / encoded:.2f}" if encoded else "-"])
        text += ("\n### Signal costs per pool, by profile (ms; first pools of each dev file, cache emptied)\n\n"
                 + markdown_table(["file", "profile", "backend", "rank ms", "embedding scorers ms",
                                   "other signals ms", "others / embedding"], lines) + "\n")
    if result.get("middleware"):
        text += ("\n### Middleware: wrapped call (native n) against a test server, median per call\n\n"
                 + markdown_table(["backend", "n", "upstream latency", "direct call", "wrapped call",
                                   "added (wrapped − direct)", "scoring in the call", "added / scoring"],
                                  [[b, m["n"], f"{m['latency_s']:g} s", f"{1000 * m['direct_s']:.0f} ms",
                                    f"{1000 * m['wrapped_s']:.0f} ms", f"{1000 * m['added_s']:.0f} ms",
                                    f"{1000 * m['scoring_s']:.0f} ms", f"{m['added_over_scoring']:.2f}×"]
                                   for b, m in result["middleware"].items()]) + "\n")
    quality = result["quality"]
    if quality:
        keys = list(dict.fromkeys(k for gains in quality.values() for k in gains))
        text += "\n### Default gain per dev file (from quality.py --embedding-backend)\n\n" + markdown_table(
            ["file [validators]"] + list(quality),
            [[key] + ["" if quality[b].get(key) is None else f"{quality[b][key]:+.3f}" for b in quality] for key in keys],
        ) + "\n"
    text += f"\n### {TARGETS}\n\n" + markdown_table(["target", "backend", "measured", ""], done_when(result)) + "\n"
    return text


def parse_sizes(text: str) -> list[int]:
    sizes = [int(part) for part in text.split(",") if part.strip()]
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("give pool sizes as positive integers, e.g. 4,8,16")
    return sizes


def parse_backends(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [n for n in names if n not in BACKENDS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"give backends among {', '.join(BACKENDS)}, e.g. torch,static")
    return names


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argument_parser(__doc__)
    parser.add_argument("--backends", type=parse_backends, default=list(BACKENDS),
                        help=f"embedding backends to compare (default: {','.join(BACKENDS)})")
    parser.add_argument("--quality-dir", type=Path, default=RESULTS_DIR,
                        help="folder of quality-BACKEND.json files to read the gains from (default: %(default)s)")
    parser.add_argument("--source", type=Path, default=BENCH_DIR / "alpaca_eval-dev.jsonl",
                        help="pool file the texts come from (default: %(default)s)")
    parser.add_argument("--sizes", type=parse_sizes, default=[4, 8, 16], help="candidates per pool (default: 4,8,16)")
    parser.add_argument("--pools", type=int, default=20, help="timed pools per size (default: %(default)s)")
    parser.add_argument("--tokens", type=int, default=300, help="candidate length in word pieces (default: %(default)s)")
    parser.add_argument("--window", type=int, default=60, help="accepted ± around --tokens (default: %(default)s)")
    parser.add_argument("--signal-pools", type=int, default=20,
                        help="pools of each profile's dev file timed signal by signal; 0 skips (default: %(default)s)")
    parser.add_argument("--throughput-pools", type=int, default=400,
                        help="pools in the throughput file (default: %(default)s)")
    parser.add_argument("--cold-runs", type=int, default=3, help="cold starts to take the median of (default: %(default)s)")
    parser.add_argument("--api-pools", type=int, default=100,
                        help="pools ranked through the Python API per backend, at most --throughput-pools (default: %(default)s)")
    parser.add_argument("--middleware-calls", type=int, default=5,
                        help="timed wrapped calls (n=8, 0.2 s upstream) per backend; 0 skips (default: %(default)s)")
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "speed.json", metavar="PATH",
                        help="where to write the numbers (default: %(default)s)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)
    for name in ("pools", "throughput_pools", "cold_runs", "api_pools"):
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
    latency = measure_latency(groups, args.backends, quiet=args.quiet)
    api = measure_api(pools[:min(args.api_pools, args.throughput_pools)], args.backends, quiet=args.quiet)
    signals = measure_signals(args.backends, args.signal_pools, quiet=args.quiet) if args.signal_pools else []
    middleware = (measure_middleware(args.source, args.backends, n=8, latency=0.2, repeats=args.middleware_calls,
                                     quiet=args.quiet) if args.middleware_calls else {})
    import resource

    own_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    cli = {backend: measure_cli(pools, backend, throughput_pools=args.throughput_pools, cold_runs=args.cold_runs,
                                quiet=args.quiet) for backend in args.backends}
    result = {
        "benchmark": "speed", "machine": info, "source": args.source.name, "tokens": args.tokens,
        "window": args.window, "backends": args.backends, "latency": latency, "api": api, "cli": cli,
        "signals": signals, "middleware": middleware, "default_backend": DEFAULT_BACKEND,
        "tools_pool_imports_torch": tools_pool_imports_torch(),
        "quality": read_quality(args.backends, args.quality_dir),
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
