"""Regular expressions that run in linear time: RE2 (``google-re2``), for patterns from untrusted places.

A JSON Schema's ``pattern`` or ``patternProperties`` comes with the input line and runs against
text a model wrote; Python's ``re`` backtracks, so ``^(a+)+$`` against 30 a's and a ``!``
takes minutes. RE2 takes time linear in the text whatever the pattern. It cannot run
lookaround, backreferences, possessive quantifiers or repetition counts above 1000; such a
pattern raises :class:`UnsupportedPattern` (callers turn it into that line's error) rather than
falling back to a backtracking engine. Minor dialect differences: ``\\d`` and ``\\w`` are ASCII
in RE2; a lone surrogate in the searched text is read as U+FFFD.
"""

from __future__ import annotations

import functools
from typing import Any

import re2

from .errors import InputError

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # RE2 would print every refused pattern on stderr


class UnsupportedPattern(InputError):
    """A pattern RE2 cannot run in linear time (lookaround, backreference...) or that is not valid."""


@functools.lru_cache(maxsize=1024)
def compile_linear(pattern: str) -> Any:
    """``pattern`` compiled by RE2; UnsupportedPattern names the pattern and RE2's reason."""
    shown = pattern if len(pattern) <= 80 else pattern[:77] + "..."
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise UnsupportedPattern(
            f"the pattern {shown!r} cannot run in linear time ({reason}): rerank runs schema regexes "
            "with RE2, which has no lookaround, backreferences or possessive quantifiers"
        ) from None
    except (UnicodeError, TypeError) as exc:
        raise UnsupportedPattern(f"the pattern {shown!r} is not a usable regular expression ({exc})") from None


def search(pattern: str, text: str) -> bool:
    """Whether ``pattern`` matches anywhere in ``text`` (``re.search``), in linear time."""
    regex = compile_linear(pattern)
    try:
        return regex.search(text) is not None
    except UnicodeEncodeError:  # lone surrogates: no Unicode text, read as U+FFFD
        return regex.search(text.encode("utf-8", "replace").decode("utf-8")) is not None
