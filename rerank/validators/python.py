"""Python validators: static checks of an answer's code, and running the query's docstring examples.

``python`` never executes anything. ``python-doctest`` runs the candidate in the sandbox
(:mod:`rerank.sandbox`) and only when it is named; it refuses to be built where the sandbox
cannot isolate code, unless ``unsafe_exec=True``. :func:`examples_for` and :func:`run_calls`
are re-exported here for execution-based scorers.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ..docstring_examples import Example, examples_for
from ..errors import ConfigError
from ..fenced_code import extract_code
from ..isolation import require_isolation
from ..python_checks import (
    entry_point_of,
    function_def,
    parse_python,
    query_signature,
    signature_problem,
    undefined_names,
    unfinished,
)
from ..sandbox import Opaque, load_and_call, run_calls
from ..scorers.base import Validator
from ..types import Candidate, Check, Request

__all__ = ["DoctestValidator", "Example", "PythonValidator", "examples_for", "run_calls", "same_value"]


@dataclass(frozen=True)
class _Static:
    """What the static checks found: the code and entry point, or the problem that stops them."""

    code: str = ""
    entry_point: str | None = None
    problem: str | None = None


class PythonValidator(Validator):
    """The answer's Python code parses, defines the function the query asks for, and is finished.

    Code is the answer's ```python blocks, else its untagged blocks, else its whole text. The
    function is ``entry_point`` or the one the query defines (a HumanEval-style prompt) or names;
    when the query gives its signature, the code's must accept the same positional arguments.
    Stubs (a body of only ``pass`` / ``...`` / a docstring) and ``NotImplementedError`` fail, and
    so does a name used but never defined or imported (a certain NameError). Nothing is executed.
    """

    name = "python"

    def __init__(self, *, entry_point: str | None = None) -> None:
        if entry_point is not None and not (isinstance(entry_point, str) and entry_point.isidentifier()):
            raise ConfigError(f"entry_point must be a Python identifier, got {entry_point!r}")
        self.entry_point = entry_point

    def check(self, request: Request, candidate: Candidate) -> Check:
        """Pass when the code is complete and provides the requested function."""
        static = self._static(request, candidate)
        if static.problem:
            return self.failed(static.problem)
        if static.entry_point:
            return self.passed(f"parses and defines {static.entry_point}() with a compatible signature")
        return self.passed("parses; the query names no function to look for")

    def _static(self, request: Request, candidate: Candidate) -> _Static:
        code = extract_code(candidate.content or "")
        if not code.strip():
            return _Static(problem="no Python code found (expected a ```python block or a bare program)")
        tree, problem = parse_python(code)
        if tree is None:
            return _Static(code, problem=problem)
        if all(isinstance(s, ast.Expr) and isinstance(s.value, (ast.Constant, ast.Name)) for s in tree.body):
            return _Static(code, problem="the answer holds no Python statements, only bare names or constants")
        entry = self.entry_point or _entry_point(request.query)
        if entry:
            found = function_def(tree, entry)
            if found is None:
                return _Static(code, entry, f"the code does not define {entry}(), the function the query asks for")
            signature = _signature(request.query, entry)
            if signature is not None:
                mismatch = signature_problem(signature, found.args, entry)
                if mismatch:
                    return _Static(code, entry, mismatch)
        stub = unfinished(tree)
        if stub:
            return _Static(code, entry, f"the code looks unfinished: {stub}")
        missing = undefined_names(tree)
        if missing:
            return _Static(code, entry, f"the code uses names it never defines or imports: {', '.join(missing)}")
        return _Static(code, entry)


class DoctestValidator(PythonValidator):
    """The static ``python`` checks, then the query's docstring examples run against the candidate.

    Each candidate runs in its own sandboxed process (``timeout`` seconds to load and per
    example, ``memory_mb`` of address space); a pool runs ``jobs`` at a time. Results are
    compared here, outside the sandbox, as values (floats with a relative tolerance of
    ``rel_tol``): the expected values never reach the candidate. A candidate whose query gives
    no example passes when its code loads and defines the function. Where the sandbox cannot
    isolate code, construction raises :class:`~rerank.errors.SandboxError` unless
    ``unsafe_exec`` allows running it unisolated.
    """

    name = "python-doctest"

    def __init__(
        self,
        *,
        entry_point: str | None = None,
        timeout: float = 5.0,
        memory_mb: int = 512,
        jobs: int = 2,
        rel_tol: float = 1e-6,
        unsafe_exec: bool = False,
    ) -> None:
        super().__init__(entry_point=entry_point)
        require_isolation(unsafe_exec)
        if not isinstance(jobs, int) or jobs < 1:
            raise ConfigError(f"jobs must be a positive integer, got {jobs!r}")
        if not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ConfigError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self.timeout = float(timeout)
        self.memory_mb = memory_mb
        self.jobs = jobs
        self.rel_tol = rel_tol
        self.unsafe_exec = unsafe_exec

    def check(self, request: Request, candidate: Candidate) -> Check:
        """Pass when every extracted example returns its expected value."""
        static = self._static(request, candidate)
        if static.problem:
            return self.failed(static.problem)
        examples = _examples(request.query, static.entry_point)
        outcome = load_and_call(
            static.code,
            [e.call for e in examples],
            entry_point=static.entry_point,
            timeout=self.timeout,
            memory_mb=self.memory_mb,
            unsafe_exec=self.unsafe_exec,
        )
        if not outcome.loaded:
            return self.failed(f"the code fails when loaded: {outcome.error}")
        if static.entry_point and outcome.defined is False:
            return self.failed(f"after loading, {static.entry_point} is not a callable function")
        if not examples:
            what = f"defines {static.entry_point}()" if static.entry_point else "runs"
            return self.passed(f"no examples found in the query's docstring; the code loads and {what}")
        failures = []
        for example, result, value, error in zip(examples, outcome.results, outcome.values, outcome.errors):
            if isinstance(value, Opaque):
                failures.append(f"{_short(example.call)} returned a {_short(value.type_name, 40)} object, not a plain value")
            elif result is None:
                failures.append(f"{_short(example.call)} raised {error or 'an error'}")
            elif not same_value(value, example.expected, rel_tol=self.rel_tol):
                failures.append(f"{_short(example.call)} returned {_short(result)}, expected {_short(repr(example.expected))}")
        if failures:
            more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
            return self.failed(f"{len(failures)} of {len(examples)} examples fail: {failures[0]}{more}")
        return self.passed(f"all {len(examples)} docstring example{'s' if len(examples) > 1 else ''} pass")

    def check_pool(self, request: Request, candidates: Sequence[Candidate]) -> list[Check]:
        """Check candidates ``jobs`` at a time, each in its own sandbox process."""
        if self.jobs == 1 or len(candidates) < 2:
            return [self.check(request, c) for c in candidates]
        with ThreadPoolExecutor(max_workers=min(self.jobs, len(candidates))) as pool:
            return list(pool.map(lambda c: self.check(request, c), candidates))


def same_value(actual: Any, expected: Any, *, rel_tol: float = 1e-6, abs_tol: float = 1e-9) -> bool:
    """Equality as a unit test's ``==`` sees it, with a tolerance for floats.

    Lists and tuples are different types (as ``==`` says); ints, floats and bools compare by value.
    """
    if isinstance(actual, (int, float)) and isinstance(expected, (int, float)):
        if isinstance(actual, float) or isinstance(expected, float):
            if math.isnan(actual) or math.isnan(expected):
                return math.isnan(actual) and math.isnan(expected)
            return math.isclose(actual, expected, rel_tol=rel_tol, abs_tol=abs_tol)
        return actual == expected
    if isinstance(actual, (list, tuple)) and isinstance(expected, (list, tuple)):
        return (
            type(actual) is type(expected)
            and len(actual) == len(expected)
            and all(same_value(a, e, rel_tol=rel_tol, abs_tol=abs_tol) for a, e in zip(actual, expected))
        )
    if isinstance(actual, dict) and isinstance(expected, dict):
        return actual.keys() == expected.keys() and all(
            same_value(actual[k], expected[k], rel_tol=rel_tol, abs_tol=abs_tol) for k in actual
        )
    try:
        return bool(actual == expected)
    except Exception:  # noqa: BLE001 - a value whose == raises is simply not equal
        return False


@lru_cache(maxsize=256)
def _entry_point(query: str) -> str | None:
    return entry_point_of(query)


@lru_cache(maxsize=256)
def _signature(query: str, entry: str) -> ast.arguments | None:
    return query_signature(query, entry)


@lru_cache(maxsize=256)
def _examples(query: str, entry: str | None) -> tuple[Example, ...]:
    return tuple(examples_for(query, entry)) if entry else ()


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
