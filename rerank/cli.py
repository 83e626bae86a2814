"""The `rerank` command line: `rerank score` ranks pre-generated candidates, line by line;
`rerank fit` learns weights from labelled ones.

Exit codes (see rerank.exits): 0 every line succeeded, 1 some lines failed (each has an error
line), 2 usage error, 3 writing the output failed midway (e.g. a full disk), 130 interrupted.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable

import click

from .ask import ASK_EXIT_HELP
from .embeddings import BACKENDS, DEFAULT_BACKEND
from .errors import AbandonedError, ConfigError, InputError, SandboxError
from .exits import EXIT_INTERRUPTED, EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, EXIT_WRITE_FAILED, HELP as EXIT_HELP
from .jsonl import Line, encode_line, read_lines, same_file, write_error, write_whole
from .pool_lines import DEFAULT_MAX_CANDIDATES, pools_of, score_line
from .progress import Progress

__all__ = ["EXIT_OK", "EXIT_SOME_FAILED", "EXIT_USAGE", "EXIT_WRITE_FAILED", "main"]

class Refused(click.ClickException):
    """A usage error told in one line (``Error: ...``, exit 2), without the usage text."""

    exit_code = EXIT_USAGE


def _numbers(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(v, (int, float)) for v in value.values())


def parse_weights(pairs: Iterable[str], path: str | None) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Weights from a JSON file overridden by ``NAME=VALUE`` pairs, and per-profile weights.

    The file holds either ``{"name": number}`` (or ``{"weights": {...}}``) for every request, or
    what `rerank fit` writes: ``{"profiles": {"profile": {"name": number}}, "report": ...}``, whose
    weights replace each named profile's defaults. Returns ``(weights, profile_weights)``.
    """
    weights: dict[str, float] = {}
    profiles: dict[str, dict[str, float]] = {}
    if path:
        try:
            loaded = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise click.BadParameter(f"cannot read weights from {path}: {exc}", param_hint="--weights") from None
        if isinstance(loaded, dict) and "profiles" in loaded:
            by_profile = loaded["profiles"]
            if not isinstance(by_profile, dict) or not all(_numbers(w) for w in by_profile.values()):
                raise click.BadParameter(f'{path}: "profiles" must map each profile name to a JSON object '
                                         f"of numbers", param_hint="--weights")
            profiles = {str(p): {str(k): float(v) for k, v in w.items()} for p, w in by_profile.items()}
            loaded = loaded.get("weights", {})
        loaded = loaded.get("weights", loaded) if isinstance(loaded, dict) else loaded
        if not _numbers(loaded):
            raise click.BadParameter(f"{path} must hold a JSON object of numbers, or {{\"profiles\": "
                                     f"{{profile: {{name: number}}}}}} as `rerank fit` writes",
                                     param_hint="--weights")
        weights.update({str(k): float(v) for k, v in loaded.items()})
    for pair in pairs:
        name, sep, value = pair.partition("=")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise click.BadParameter(f"expected NAME=NUMBER, got {pair!r}", param_hint="--weight")
    return weights, profiles


validator_option = click.option(
    "--validator", "validators", multiple=True, metavar="NAME",
    help="Run this validator as a gate (repeatable): json, json-schema, tools, python, "
         "python-doctest (executes code in a sandbox), regex, length, or a plugin "
         "(see `rerank plugins`).")
model_option = click.option("--embedding-model", "model", metavar="DIR",
                            help="Embedding model directory (default: the bundled all-MiniLM-L6-v2).")
backend_option = click.option(
    "--embedding-backend", "embedding_backend", type=click.Choice(BACKENDS), default=None,
    help=f"How embeddings are computed (default: {DEFAULT_BACKEND}): torch runs the model as it ships; onnx "
         f"runs it exported once to int8 ONNX (no torch at run time); static reads vectors distilled from it "
         f"once (fastest, weaker on relevance). `rerank prepare` builds onnx's and static's files ahead of time.")


def scoring_options(func: Any) -> Any:
    """The options shared by every command that ranks: validators, scorers, weights, model."""
    options = [
        validator_option,
        click.option("--scorer", "scorers", multiple=True, metavar="NAME",
                     help="Use only these scorers (repeatable) instead of the task's profile."),
        click.option("--weight", "weight_pairs", multiple=True, metavar="NAME=NUMBER",
                     help="Override one scorer's weight (repeatable); 0 turns it off."),
        click.option("--weights", "weights_file", type=click.Path(dir_okay=False), metavar="FILE",
                     help="JSON object of scorer weights, or the per-profile weights `rerank fit` writes."),
        model_option,
        backend_option,
        click.option("--strict", is_flag=True,
                     help="Fail a pool when no candidate passes its validators."),
        click.option("--unsafe-exec", is_flag=True,
                     help="Let python-doctest / execution run candidate code even where the sandbox cannot "
                          "isolate it (no bubblewrap, namespaces refused). Without it they refuse to run."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def build_reranker(validators: tuple[str, ...], scorers: tuple[str, ...], weight_pairs: tuple[str, ...],
                   weights_file: str | None, model: str | None, strict: bool, unsafe_exec: bool = False,
                   embedding_backend: str | None = None) -> Any:
    """A Reranker from the scoring options; bad names or values, or no sandbox, are usage errors."""
    from .reranker import Reranker

    weights, profile_weights = parse_weights(weight_pairs, weights_file)
    try:
        if model is not None:
            from .embeddings import get_embedder

            try:
                _ = get_embedder(model, embedding_backend).encoder  # a model named but unusable is an error now
            except ConfigError as exc:
                raise Refused(" ".join(str(exc).split())) from None
        return Reranker(scorers=list(scorers) or None, validators=list(validators), weights=weights, model=model,
                        strict=strict, profile_weights=profile_weights, unsafe_exec=unsafe_exec,
                        embedding_backend=embedding_backend)
    except (ConfigError, SandboxError) as exc:
        raise click.UsageError(str(exc)) from None


SIGNALS_WIDTH = 64
"""`--format table`: the width of the signals column."""


def _signals(components: dict[str, float], width: int) -> str:
    """``name=+0.12`` pairs, the largest first, as many whole ones as fit, then ``+K more``."""
    pairs = [f"{k}={v:+.2f}" for k, v in sorted(components.items(), key=lambda kv: -abs(kv[1]))]
    shown: list[str] = []
    for number, pair in enumerate(pairs):
        rest = len(pairs) - number - 1
        more = f" +{rest} more" if rest else ""
        if len(" ".join([*shown, pair]) + more) > width:
            shown.append(f"+{len(pairs) - number} more")
            break
        shown.append(pair)
    return " ".join(shown)


def format_table(result: dict[str, Any], candidates: list[Any] | None) -> str:
    """A readable ranking of one pool: rank (0 is the best, as in the JSON), index, total, gate,
    the largest signals (each number whole), text preview."""
    if "error" in result and "candidates" not in result:
        return f"== {result.get('id')}: ERROR {result['error']}\n"
    head = f"== {result['id']}  profile={result['profile']}  best=#{result['best_index']}"
    if result.get("all_failed"):
        head += "  (every candidate failed validation)"
    rows = [head, f"{'rank':>4} {'#':>2} {'score':>7}  gate  {'signals':<{SIGNALS_WIDTH}} text"]
    for c in sorted(result["candidates"], key=lambda c: c["rank"]):
        signals = _signals(c["components"], SIGNALS_WIDTH)
        failed = [k["message"] for k in c["checks"] if not k["passed"]]
        raw = candidates[c["index"]] if candidates else ""
        text = raw if isinstance(raw, str) else (raw.get("content") or json.dumps(raw.get("tool_calls")))
        preview = " ".join(str(text).split())[:48]
        gate = "fail" if failed else ("pass" if c["checks"] else "-")
        rows.append(f"{c['rank']:>4} {c['index']:>2} {c['score']:>7.2f}  {gate:<4}  {signals:<{SIGNALS_WIDTH}} {preview}")
        rows += [f"{'':>24}! {m[:100]}" for m in failed]
    return "\n".join(rows) + "\n"


@click.group(epilog=EXIT_HELP)
@click.version_option(package_name="rerank")
def main() -> None:
    """Ask an LLM several times, and hand back the best answer."""


def _refuse_same_file(input_file: BinaryIO, output: str) -> None:
    if same_file(input_file, output):
        shown = "stdout" if output == "-" else output
        raise Refused(f"the output ({shown}) is the input file: writing it would destroy the input "
                      "while it is read; write to another file")


def _open_output(output: str) -> BinaryIO:
    """OUTPUT opened for writing before any work, so that a bad path fails at once."""
    if output == "-":
        return sys.stdout.buffer
    try:
        return open(output, "wb", buffering=0)
    except OSError as exc:
        raise Refused(f"cannot write {write_error(output, exc)}") from None


@main.command(epilog=EXIT_HELP)
@click.argument("input_file", metavar="INPUT", type=click.File("rb"))
@click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True), default="-",
              help="Where to write results (default: stdout); never the INPUT file.")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "table"]), default="jsonl",
              help="jsonl: one JSON line per input line; table: a readable ranking per pool.")
@click.option("--max-candidates", type=click.IntRange(min=1), default=DEFAULT_MAX_CANDIDATES, show_default=True,
              help="A pool with more candidates is an error line, not ranked.")
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
@scoring_options
def score(input_file: BinaryIO, output: str, fmt: str, max_candidates: int, quiet: bool, **scoring: Any) -> None:
    """Rank the candidates of every line of INPUT (a JSONL file, or - for stdin).

    Each line: {"id", "query", "context"?, "tools"?, "schema"?, "candidates": [str | message]}.
    Writes one line per input line, in order: {"id", "best_index", "best", ...} or {"id", "line",
    "error"}. A line that is not valid JSON text (also NaN, Infinity, integers over 4,300 digits,
    lone surrogates) is an error line; a value that JSON cannot hold is written as a string and
    listed in the line's "replaced".
    """
    _refuse_same_file(input_file, output)
    total = _count_lines(input_file)
    if total == 0:
        raise Refused(f"{_shown(input_file)} is empty: nothing to rank (each line: "
                      '{"id", "query", "candidates": [...]})')
    reranker = build_reranker(**scoring)
    target = _open_output(output)
    progress = Progress("score", total=total, enabled=not quiet)
    failed = written = 0
    gates = GateTally()
    from .warm import warmed

    try:
        for line in warmed(reranker, read_lines(input_file), pools_of(max_candidates)):
            result = score_line(reranker, line, max_candidates=max_candidates)
            failed += "error" in result
            gates.add(result)
            candidates = (line.value or {}).get("candidates")
            data = encode_line(result) if fmt == "jsonl" else format_table(
                result, candidates if isinstance(candidates, list) else None).encode("utf-8", "backslashreplace")
            try:
                write_whole(target, data)
            except OSError as exc:
                progress.close()
                shown = "stdout" if output == "-" else output
                click.echo(f"rerank score: stopped: cannot write {write_error(shown, exc)}. The {written} "
                           f"lines written are whole; input lines from {line.number} on were not scored.",
                           err=True)
                sys.exit(EXIT_WRITE_FAILED)
            written += 1
            progress.advance(failed="error" in result)
    finally:
        if output != "-":
            target.close()
    progress.close()
    if not written:
        raise Refused(f"{_shown(input_file)} holds no lines: nothing was ranked")
    if gates.warning():
        click.echo(f"rerank score: warning: {gates.warning()}", err=True)
    sys.exit(EXIT_SOME_FAILED if failed else EXIT_OK)


def _shown(input_file: BinaryIO) -> str:
    name = getattr(input_file, "name", "-")
    return "stdin" if name in ("-", "<stdin>") or not isinstance(name, str) else name


class GateTally:
    """Counts the pools whose every candidate failed validation, and which validators failed."""

    def __init__(self) -> None:
        self.ranked = 0
        self.all_failed = 0
        self.failures: dict[str, int] = {}
        self.checked: dict[str, int] = {}

    def add(self, result: dict[str, Any]) -> None:
        """Count one output line; error lines (also --strict's, which say so) are left out."""
        if "error" in result:
            return
        self.ranked += 1
        self.all_failed += bool(result.get("all_failed"))
        for candidate in result["candidates"]:
            for check in candidate["checks"]:
                self.checked[check["validator"]] = self.checked.get(check["validator"], 0) + 1
                if not check["passed"]:
                    self.failures[check["validator"]] = self.failures.get(check["validator"], 0) + 1

    def warning(self) -> str | None:
        """What to tell when every candidate of every ranked pool failed a gate, else None."""
        if not self.ranked or self.all_failed < self.ranked:
            return None
        failing = ", ".join(f"{name} failed {count} of {self.checked[name]} candidates"
                            for name, count in sorted(self.failures.items(), key=lambda kv: -kv[1]))
        pools = "the pool" if self.ranked == 1 else f"all {self.ranked} pools"
        return (f"every candidate of {pools} failed validation ({failing}), so no winner passed a gate; "
                "does the validator fit these pools? (python checks code answers, json JSON answers)")


@main.command("fit")
@click.argument("input_file", metavar="LABELLED", type=click.File("rb"))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), metavar="FILE",
              help="Where to write the weights (JSON), for `rerank score --weights FILE`.")
@validator_option
@click.option("--scorer", "scorers", multiple=True, metavar="NAME",
              help="Also measure this scorer and fit its weight (repeatable), beside each profile's own.")
@model_option
@backend_option
@click.option("--folds", type=click.IntRange(min=2), default=5, show_default=True,
              help="Cross-validation folds (fewer when there are fewer groups).")
@click.option("--group-by", metavar="FIELD",
              help="Pools sharing this field's value are never split between folds "
                   "(default: sample_of, else source, else the id up to its last / or #).")
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
def fit(input_file: BinaryIO, output: str, validators: tuple[str, ...], scorers: tuple[str, ...],
        model: str | None, embedding_backend: str | None, folds: int, group_by: str | None, quiet: bool) -> None:
    """Learn scorer weights for each task profile from labelled pools in LABELLED (JSONL, or -).

    Each line is a `rerank score` input line whose candidates carry a "label" (a number, higher
    is better: thumbs up/down as 1/0). Every pool is measured once; for each profile, weights
    are fitted and cross-validated on folds that never split a group, and written only when
    they beat the profile's defaults on held-out pools. Lines without labels or that cannot be
    used are counted and skipped. Prints the held-out results per profile.

    Exit 0 when the weights file was written, 2 on usage errors (e.g. no usable pool).
    """
    from .fit import fit_file, measuring_reranker

    if not Path(output).resolve().parent.is_dir():
        raise click.BadParameter(f"{Path(output).parent} is not a directory", param_hint="--output")
    try:
        reranker = measuring_reranker(validators=validators, extra_scorers=scorers, model=model,
                                      embedding_backend=embedding_backend)
        run = fit_file(input_file, reranker=reranker, source=input_file.name, folds=folds, group_by=group_by,
                       settings={"validators": list(validators), "extra_scorers": list(scorers),
                                 "embedding_model": model, "embedding_backend": embedding_backend}, quiet=quiet)
    except (ConfigError, InputError) as exc:
        raise click.UsageError(str(exc)) from None
    for error in run.reading.errors[:10]:
        click.echo(f"skipped {error}", err=True)
    if len(run.reading.errors) > 10:
        click.echo(f"... and {len(run.reading.errors) - 10} more errors (all listed in the report)", err=True)
    try:
        Path(output).write_text(json.dumps(run.document(), indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise click.UsageError(f"cannot write {output}: {exc}") from None
    click.echo(run.table(), nl=False)
    click.echo(f"weights written to {output}", err=True)
    sys.exit(EXIT_OK)


@main.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per plugin instead of a table.")
def plugins_command(as_json: bool) -> None:
    """List installed plugins: name, kind, package, and what each one checks or scores.

    A plugin runs only where it is named (--scorer NAME, --weight NAME=W, --validator NAME).
    Exits 1 when a plugin cannot be loaded (its row says why).
    """
    from .plugins import describe

    entries = describe()
    if as_json:
        for entry in entries:
            click.echo(json.dumps(entry))
    elif not entries:
        click.echo("No plugins installed. A package adds one under the 'rerank.scorers' entry point.")
    else:
        rows = [("name", "kind", "package", "provides")] + [
            (e["name"], e["kind"] or "broken", f"{e['distribution'] or '?'} {e['version'] or ''}".strip(),
             e["summary"] if e["error"] is None else f"ERROR: {e['error']}")
            for e in entries
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        for row in rows:
            click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[3])
    sys.exit(EXIT_SOME_FAILED if any(e["error"] for e in entries) else EXIT_OK)


@main.command("prepare")
@click.option("--embedding-backend", "embedding_backend", type=click.Choice(BACKENDS), default=DEFAULT_BACKEND,
              show_default=True, help="The backend to prepare.")
@model_option
def prepare_command(embedding_backend: str, model: str | None) -> None:
    """Build what an embedding backend derives from the model, now, so that no run waits for it.

    onnx exports the model to int8 ONNX (about 15 s; needs torch once, not at run time); static
    distils the model's vectors (about 30 s idle, minutes on a busy machine; needs torch); torch
    needs nothing and is only loaded as a check. The result goes to the cache folder
    ($RERANK_CACHE_DIR, else $XDG_CACHE_HOME/rerank, else ~/.cache/rerank), e.g. in a Docker build.
    """
    from .backends import prepare
    from .embeddings import bundled_model_path, get_embedder

    path = Path(model) if model else bundled_model_path()
    if not path.is_dir():
        raise click.BadParameter(f"{path} is not a model directory", param_hint="--embedding-model")
    try:
        folder = prepare(embedding_backend, path)
        embedder = get_embedder(model, embedding_backend)
        dimension = embedder.dimension  # loads the backend: proves the artifact works
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    where = f"ready in {folder}" if folder else f"reads {path} directly"
    click.echo(f"{embedding_backend}: {where} ({dimension}-dimensional vectors)")
    sys.exit(EXIT_OK)


def _count_lines(stream: BinaryIO) -> int | None:
    """Lines in a seekable file (for the ETA), or None for a pipe."""
    try:
        if not stream.seekable():
            return None
        start = stream.tell()
        count, last = 0, b"\n"
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            count, last = count + chunk.count(b"\n"), chunk[-1:]
        stream.seek(start)
        return count + (last != b"\n")
    except (OSError, ValueError):
        return None


from .generate import MAX_CANDIDATES  # noqa: E402 - for `generate` below


class _NOrAuto(click.ParamType[int | str, Any]):
    """`rerank generate -n`: a whole number of candidates, or 'auto' (adaptive N)."""

    name = "N|auto"

    def convert(self, value: Any, param: Any, ctx: Any) -> int | str:
        if value == "auto":
            return "auto"
        try:
            number = int(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is neither a whole number nor 'auto'", param, ctx)
        if not 1 <= number <= MAX_CANDIDATES:
            self.fail(f"{number} is not in the range 1 to {MAX_CANDIDATES}", param, ctx)
        return number


_N_OR_AUTO = _NOrAuto()


@main.command("generate", epilog=EXIT_HELP)
@click.argument("input_file", metavar="INPUT", type=click.File("rb"))
@click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True), default="-",
              help="Where to write the output lines (default: stdout); never the INPUT file.")
@click.option("--base-url", envvar="OPENAI_BASE_URL", metavar="URL",
              help="OpenAI-compatible API, e.g. http://localhost:8000/v1 (default: $OPENAI_BASE_URL, else OpenAI).")
@click.option("--api-key", envvar="OPENAI_API_KEY", metavar="KEY",
              help="API key (default: $OPENAI_API_KEY; a local server given by --base-url needs none).")
@click.option("-n", "n", type=_N_OR_AUTO, default="4", show_default=True,
              help="Candidates generated per request, or 'auto': min-n first, topped up to max-n unless they agree.")
@click.option("--min-n", type=click.IntRange(1, MAX_CANDIDATES), default=2, show_default=True,
              help="With -n auto: candidates asked for first.")
@click.option("--max-n", type=click.IntRange(1, MAX_CANDIDATES), default=8, show_default=True,
              help="With -n auto: most candidates per request.")
@click.option("--top-up", type=click.Choice(["round", "double", "step"]), default="round", show_default=True,
              help="With -n auto: the rest up to max-n in one round, doubling, or one candidate a round.")
@click.option("--settle", type=click.Choice(["majority", "confident"]), default="majority", show_default=True,
              help="With -n auto: stop at a majority of two or more, or once the leading answer is 95% likely.")
@click.option("--strategy", type=click.Choice(["best", "first-valid"]), default="best", show_default=True,
              help="first-valid: answer with the first candidate that passes every gate.")
@click.option("--max-tokens-total", type=click.IntRange(min=1), default=None, metavar="TOKENS",
              help="Per request: stop topping up (-n auto) once this many tokens are spent.")
@click.option("--model", "llm_model", metavar="NAME", help="Send every request to this model instead of its body's.")
@click.option("-j", "--concurrency", type=click.IntRange(min=1), default=4, show_default=True,
              help="Input lines in flight at once (each fans out to its n candidates).")
@click.option("--max-retries", type=click.IntRange(min=0), default=2, show_default=True,
              help="Retries of a failed request (rate limits, 5xx, connection errors) before its error line.")
@click.option("--resume", is_flag=True,
              help="Keep OUTPUT's successful answers, take its error lines out and run every other line.")
@click.option("--overwrite", is_flag=True, help="Replace an OUTPUT that already holds answers.")
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
@scoring_options
def generate(input_file: BinaryIO, output: str, base_url: str | None, api_key: str | None, n: int | str,
             min_n: int, max_n: int, top_up: str, settle: str, strategy: str, max_tokens_total: int | None,
             llm_model: str | None, concurrency: int, max_retries: int, resume: bool, overwrite: bool,
             quiet: bool, **scoring: Any) -> None:
    """Answer every request of INPUT (OpenAI Batch API JSONL, or - for stdin) with the best of N.

    Input lines: {"custom_id", "method": "POST", "url": "/v1/chat/completions" | "/v1/responses",
    "body": {...}}. Output lines, as they finish: {"id", "custom_id", "response": {"status_code",
    "request_id", "body"}, "error"}; the body is the chosen completion, its ranking in "rerank".
    A line that cannot run gets an error line with its input "line"; a repeated custom_id runs
    once (the first line) and each repeat gets a "duplicate_custom_id" error line whose
    custom_id is null. A full disk stops the run with exit 3 and the command that resumes it.
    """
    from .batch import generate_main

    reranker = build_reranker(**scoring)
    try:
        sys.exit(generate_main(
            input_file, output=output, reranker=reranker, base_url=base_url, api_key=api_key, n=n,
            model=llm_model, concurrency=concurrency, max_retries=max_retries, resume=resume,
            overwrite=overwrite, quiet=quiet, total=_count_lines(input_file), argv=sys.argv[1:],
            notify=_generate_notifier(quiet),
            fanning={"min_n": min_n, "max_n": max_n, "top_up": top_up, "settle": settle, "strategy": strategy,
                     "max_tokens_total": max_tokens_total},
        ))
    except (ConfigError, InputError) as exc:
        raise click.UsageError(str(exc)) from None
    except AbandonedError:
        # Worker threads still wait on the abandoned requests; a normal exit would join them.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_INTERRUPTED)


def _generate_notifier(quiet: bool) -> Callable[[str], None]:
    """`rerank generate`'s messages on stderr, each over the progress line when one is shown."""

    def notify(message: str) -> None:
        clear = "\r\x1b[K" if sys.stderr.isatty() and not quiet else ""
        click.echo(f"{clear}rerank generate: {message}", err=True)

    return notify


# --- rerank serve ---------------------------------------------------------------------------


@main.command("serve")
@click.option("--upstream", required=True, envvar="RERANK_UPSTREAM", metavar="URL",
              help="OpenAI-compatible API the candidates come from, e.g. https://api.openai.com/v1.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="Port to listen on.")
@click.option("-n", "n", type=click.IntRange(1, MAX_CANDIDATES), default=4, show_default=True,
              help="Candidates per request (callers may override it up to --max-n).")
@click.option("--max-n", type=click.IntRange(1, MAX_CANDIDATES), default=16, show_default=True,
              help="Largest n a caller may ask for.")
@click.option("--model", "llm_models", multiple=True, metavar="NAME",
              help="Spread the candidates over these models (repeatable) instead of the request's.")
@click.option("--concurrency", type=click.IntRange(min=1), default=8, show_default=True,
              help="Upstream requests in flight at once for one request.")
@click.option("--max-upstream", type=click.IntRange(min=1), default=64, show_default=True,
              help="Upstream requests in flight at once for the whole process.")
@click.option("--deadline", type=click.FloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
              help="Pick among the candidates done by then (waiting for at least one).")
@click.option("--timeout", "request_timeout", type=click.FloatRange(min=0, min_open=True), default=600.0,
              show_default=True, metavar="SECONDS", help="Give up on a request after this long (504).")
@click.option("--max-body-bytes", type=click.IntRange(min=1), default=8 * 1024 * 1024, show_default=True,
              help="Largest request body accepted (413 above).")
@click.option("--upstream-api-key", envvar="RERANK_UPSTREAM_API_KEY", metavar="KEY",
              help="One upstream key for every caller (default: $RERANK_UPSTREAM_API_KEY; without it "
                   "each caller's Authorization is forwarded). Requires --api-key or --api-key-file.")
@click.option("--api-key", "api_keys", multiple=True, envvar="RERANK_API_KEY", metavar="KEY",
              help="A key callers must present as 'Authorization: Bearer KEY' (repeatable).")
@click.option("--api-key-file", type=click.Path(exists=True, dir_okay=False), metavar="FILE",
              help="File of caller keys, one a line.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes (each loads its own models).")
@click.option("--graceful-timeout", type=click.IntRange(min=0), default=30, show_default=True,
              metavar="SECONDS", help="On SIGTERM, how long in-flight requests may take to finish.")
@click.option("--log-bodies", is_flag=True, help="Log request bodies (prompts!) in the per-request lines.")
@scoring_options
def serve(upstream: str, host: str, port: int, n: int, max_n: int, llm_models: tuple[str, ...],
          concurrency: int, max_upstream: int, deadline: float | None, request_timeout: float,
          max_body_bytes: int, upstream_api_key: str | None, api_keys: tuple[str, ...], api_key_file: str | None,
          workers: int, graceful_timeout: int, log_bodies: bool, validators: tuple[str, ...],
          scorers: tuple[str, ...], weight_pairs: tuple[str, ...], weights_file: str | None, model: str | None,
          strict: bool, unsafe_exec: bool, embedding_backend: str | None) -> None:
    """Serve an OpenAI-compatible API answering chat completions and responses with the best of N.

    Point any OpenAI client at http://HOST:PORT/v1. Other /v1/* requests pass through to the
    upstream; GET /healthz is the readiness probe, GET /metrics the Prometheus metrics.
    """
    from .serve import ServeConfig, run

    build_reranker(validators, scorers, weight_pairs, weights_file, model, strict, unsafe_exec,
                   embedding_backend)  # bad names fail here
    weights, profile_weights = parse_weights(weight_pairs, weights_file)
    keys = list(api_keys)
    if api_key_file:
        keys += [line.strip() for line in Path(api_key_file).read_text().splitlines() if line.strip()]
    reranker_options = {"scorers": list(scorers) or None, "validators": list(validators), "weights": weights,
                        "model": model, "strict": strict, "profile_weights": profile_weights,
                        "unsafe_exec": unsafe_exec, "embedding_backend": embedding_backend}
    try:
        config = ServeConfig(upstream=upstream, n=n, models=llm_models, concurrency=concurrency, deadline=deadline,
                             reranker_options=reranker_options, upstream_api_key=upstream_api_key,
                             api_keys=tuple(keys), max_body_bytes=max_body_bytes, max_n=max_n,
                             max_upstream=max_upstream, request_timeout=request_timeout, log_bodies=log_bodies)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    run(config, host=host, port=port, workers=workers, graceful_timeout=graceful_timeout)


# --- rerank ask: one best-of-N answer from the shell (the logic is in rerank/ask.py) ----------------


@main.command("ask", epilog=ASK_EXIT_HELP)
@click.argument("prompt")
@click.option("-n", "n", type=click.IntRange(1, MAX_CANDIDATES), default=4, show_default=True,
              help="Candidates generated.")
@click.option("--model", "llm_model", envvar="RERANK_MODEL", default="gpt-4o-mini",
              metavar="NAME", help="The model to ask (default: $RERANK_MODEL, else gpt-4o-mini).")
@click.option("--base-url", envvar="OPENAI_BASE_URL", metavar="URL",
              help="OpenAI-compatible API, e.g. http://localhost:8000/v1 (default: $OPENAI_BASE_URL, else OpenAI).")
@click.option("--api-key", envvar="OPENAI_API_KEY", metavar="KEY",
              help="API key (default: $OPENAI_API_KEY; a local server given by --base-url needs none).")
@click.option("--system", metavar="TEXT", help="A system message sent before the prompt.")
@click.option("--explain", "show_ranking", is_flag=True,
              help="Write the ranking (every candidate, its score and signals) to stderr.")
@click.option("--max-retries", type=click.IntRange(min=0), default=2, show_default=True,
              help="Retries of a failed request (rate limits, 5xx, connection errors).")
@scoring_options
def ask_command(prompt: str, n: int, llm_model: str, base_url: str | None, api_key: str | None,
                system: str | None, show_ranking: bool, max_retries: int, **scoring: Any) -> None:
    """Ask PROMPT (or - to read it from stdin) N times and stream the best answer to stdout.

    rerank ask "Explain BM25 in two sentences." -n 4 --explain
    """
    import openai

    from .ask import messages_of, stream_best
    from .errors import RerankError
    from .middleware import api_key_for, wrap

    if prompt == "-":
        prompt = sys.stdin.read()
    if not prompt.strip():
        raise Refused("the prompt is empty: give it as an argument, or pipe it in with -")
    try:
        api_key = api_key_for(api_key, base_url)
    except ConfigError as exc:
        raise Refused(str(exc)) from None
    reranker = build_reranker(**scoring)
    client = wrap(openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=max_retries), n=n,
                  reranker=reranker)
    where = base_url or str(client.base_url)

    def write(piece: str) -> None:
        click.echo(piece, nl=False)
        sys.stdout.flush()

    try:
        text, ranking = stream_best(client, model=llm_model, messages=messages_of(prompt, system), write=write)
    except openai.APIConnectionError as exc:
        click.echo(f"rerank ask: cannot reach {where}: {exc.__cause__ or exc}", err=True)
        sys.exit(EXIT_SOME_FAILED)
    except openai.APIStatusError as exc:
        hint = " (check OPENAI_API_KEY or --api-key)" if exc.status_code in (401, 403) else ""
        body = exc.body if isinstance(exc.body, dict) else {}
        message = body.get("message") or exc.message  # the SDK's own message repeats the status
        click.echo(f"rerank ask: {where} answered {exc.status_code}: {message}{hint}", err=True)
        sys.exit(EXIT_SOME_FAILED)
    except (openai.OpenAIError, RerankError) as exc:
        click.echo(f"rerank ask: no answer: {exc}", err=True)
        sys.exit(EXIT_SOME_FAILED)
    except KeyboardInterrupt:
        click.echo("\nrerank ask: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    if not text.endswith("\n"):
        click.echo()
    if show_ranking:
        candidates = [c.candidate.to_message() for c in ranking.by_index()]
        result = {"id": "ask", **ranking.to_dict()}
        click.echo(format_table(result, candidates), err=True, nl=False)
    sys.exit(EXIT_OK)


# --- `--ray [ADDRESS]`: score and generate as a Ray Data job (rerank.ray; needs `rerank[ray]`) ----


def _on_ray(command: click.Command, run_on_ray: Callable[..., int]) -> None:
    """Give ``command`` the options ``--ray [ADDRESS]``, ``--actors`` and ``--batch-size``; with
    ``--ray`` it runs ``run_on_ray(Job options, **its other options)`` instead, which returns the
    exit code."""
    command.params += [
        click.Option(["--ray", "ray_address"], is_flag=False, flag_value="local", default=None, metavar="[ADDRESS]",
                     help="Run as a Ray Data job on the cluster at ADDRESS (auto, host:port, ray://...); alone, "
                          "on a local cluster. Output in input order; FILE.parquet in or out is read or "
                          "written as Parquet. Put it after INPUT, or write --ray=ADDRESS."),
        click.Option(["--actors"], type=click.IntRange(min=1), default=1, show_default=True,
                     help="With --ray: actors running the job, each loading the models once."),
        click.Option(["--batch-size"], type=click.IntRange(min=1), default=64, show_default=True,
                     help="With --ray: input lines an actor takes at a time."),
    ]
    plain = command.callback
    assert plain is not None

    def callback(ray_address: str | None, actors: int, batch_size: int, **options: Any) -> Any:
        if ray_address is None:
            return plain(**options)
        sys.exit(run_on_ray({"address": ray_address, "actors": actors, "batch_size": batch_size}, **options))

    command.callback = callback


def _run_on_ray(stage: str, options: dict[str, Any], cluster: dict[str, Any], quiet: bool, input_file: BinaryIO,
                output: str, read: Callable[[Any, Iterable[Line]], Iterable[Line]]) -> int:
    """Run ``stage`` of rerank.ray over INPUT into OUTPUT on the cluster; the exit code."""
    if cluster["address"] == "local":
        import os  # a private local cluster listens on 127.0.0.1 only (read when Ray is imported)
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        from . import ray as on_ray
    except ImportError as exc:
        raise click.UsageError(f"--ray needs Ray: pip install 'rerank[ray]' ({exc})") from None
    job = on_ray.Job(getattr(on_ray, stage), options, actors=cluster["actors"], batch_size=cluster["batch_size"],
                     quiet=quiet)
    try:
        started = on_ray.connect(cluster["address"], quiet=quiet)
    except Exception as exc:  # noqa: BLE001 - Ray raises several kinds (ConnectionError, RuntimeError, ...)
        raise click.ClickException(f"cannot start or reach the Ray cluster at {cluster['address']}: "
                                   f"{type(exc).__name__}: {exc}") from None
    try:
        parquet = input_file.name.endswith(".parquet")
        failed = on_ray.run(job, input_file, output, lines=None if parquet else read(on_ray, read_lines(input_file)))
    finally:
        if started:
            on_ray.disconnect()
    return EXIT_SOME_FAILED if failed else EXIT_OK


def _reranker_options(validators: tuple[str, ...], scorers: tuple[str, ...], weight_pairs: tuple[str, ...],
                      weights_file: str | None, model: str | None, strict: bool, unsafe_exec: bool = False,
                      embedding_backend: str | None = None) -> dict[str, Any]:
    """The scoring options as a stage's keyword arguments, checked here by building a Reranker."""
    build_reranker(validators, scorers, weight_pairs, weights_file, model, strict, unsafe_exec, embedding_backend)
    weights, profile_weights = parse_weights(weight_pairs, weights_file)
    return {"validators": list(validators), "scorers": list(scorers) or None, "weights": weights,
            "profile_weights": profile_weights, "strict": strict, "model": model, "unsafe_exec": unsafe_exec,
            "embedding_backend": embedding_backend}


def _score_on_ray(cluster: dict[str, Any], input_file: BinaryIO, output: Any, fmt: str, quiet: bool,
                  max_candidates: int = DEFAULT_MAX_CANDIDATES, **scoring: Any) -> int:
    if fmt != "jsonl":
        raise click.UsageError("--ray writes jsonl (or Parquet to -o FILE.parquet); drop --format table")
    options = {**_reranker_options(**scoring), "max_candidates": max_candidates}
    return _run_on_ray("RerankStage", options, cluster, quiet, input_file, _path(output),
                       lambda on_ray, lines: lines)


def _generate_on_ray(cluster: dict[str, Any], input_file: BinaryIO, output: str, base_url: str | None,
                     api_key: str | None, n: int | str, llm_model: str | None, concurrency: int, max_retries: int,
                     resume: bool, overwrite: bool, quiet: bool, min_n: int, max_n: int, top_up: str, settle: str,
                     strategy: str, max_tokens_total: int | None, **scoring: Any) -> int:
    if resume:
        raise click.UsageError("--resume is not available with --ray: run again with --overwrite")
    if output != "-" and Path(output).is_file() and Path(output).stat().st_size and not overwrite:
        raise click.UsageError(f"{output} already holds answers: pass --overwrite to start again")
    from .middleware import api_key_for

    try:
        api_key = api_key_for(api_key, base_url)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    ranking = _reranker_options(**scoring)
    ranking["embedding_model"] = ranking.pop("model")
    options = {**ranking, "base_url": base_url, "api_key": api_key, "n": n, "model": llm_model,
               "concurrency": concurrency, "max_retries": max_retries,
               "fanning": {"min_n": min_n, "max_n": max_n, "top_up": top_up, "settle": settle, "strategy": strategy,
                           "max_tokens_total": max_tokens_total}}
    return _run_on_ray("GenerateStage", options, cluster, quiet, input_file, output,
                       lambda on_ray, lines: on_ray.requests(lines, model=llm_model))


def _path(output: Any) -> str:
    """The path of the output: a path given as text, or a click output file's; - for stdout."""
    name = output if isinstance(output, str) else getattr(output, "name", "-")
    return "-" if name in ("-", "<stdout>") else str(name)


_on_ray(score, _score_on_ray)
_on_ray(generate, _generate_on_ray)



# --- exit codes in every command's --help (score and generate take exits.HELP where they are defined) ---

EXIT_HELPS = {
    "fit": "Exit codes: 0 the weights file was written; 2 usage error, nothing written (no usable pool, "
           "an unreadable LABELLED, an OUTPUT that cannot be written).",
    "plugins": "Exit codes: 0 every plugin loads; 1 a plugin cannot be loaded (its row says why).",
    "prepare": "Exit codes: 0 the backend is ready; 2 usage error (not a model directory, the backend "
               "cannot be built).",
    "serve": "Exit codes: 0 stopped by SIGTERM or Ctrl-C (in-flight requests drained); 2 usage error, "
             "nothing served (bad option, unknown scorer or validator, no sandbox for one that needs it).",
}
for _name, _epilog in EXIT_HELPS.items():
    if _name in main.commands and not main.commands[_name].epilog:
        main.commands[_name].epilog = _epilog

if __name__ == "__main__":
    main()
