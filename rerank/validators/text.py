"""Plain-text validators: a regular expression the answer must (or must not) match, and length limits."""

from __future__ import annotations

import re

from ..errors import ConfigError
from ..instructions import instructions_in
from ..scorers.base import Validator
from ..text import words
from ..types import Candidate, Check, Request

_FLAG_LETTERS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE, "a": re.ASCII}


def _flags(flags: int | str | re.RegexFlag) -> int:
    if isinstance(flags, str):
        unknown = set(flags.lower()) - set(_FLAG_LETTERS)
        if unknown:
            raise ConfigError(f"unknown regex flag letter(s) {''.join(sorted(unknown))!r}: use any of i, m, s, x, a")
        value = 0
        for letter in flags.lower():
            value |= _FLAG_LETTERS[letter]
        return value
    if isinstance(flags, int):
        return int(flags)
    raise ConfigError(f"flags must be an int (re.I | re.M) or letters such as 'im', got {type(flags).__name__}")


class RegexValidator(Validator):
    """The answer's text contains a match of ``pattern`` (or, with ``must_match=False``, does not).

    ``re.search`` semantics over the content and any tool calls; ``flags`` are ``re`` flags or
    letters (``"im"``). Only the first ``max_chars`` characters are searched, which bounds the
    time a pattern can take. The default pattern ``\\S`` requires a non-blank answer.
    """

    name = "regex"

    def __init__(
        self,
        *,
        pattern: str = r"\S",
        must_match: bool = True,
        flags: int | str = 0,
        max_chars: int = 100_000,
    ) -> None:
        if not isinstance(pattern, str):
            raise ConfigError(f"pattern must be a string, got {type(pattern).__name__}")
        if not isinstance(max_chars, int) or max_chars < 1:
            raise ConfigError(f"max_chars must be a positive integer, got {max_chars!r}")
        try:
            self.regex = re.compile(pattern, _flags(flags))
        except re.error as exc:
            raise ConfigError(f"regex pattern {pattern!r} does not compile: {exc}; fix the pattern") from None
        self.must_match = bool(must_match)
        self.max_chars = max_chars

    def check(self, request: Request, candidate: Candidate) -> Check:
        """Pass when a match is found (``must_match``) or not found (otherwise)."""
        text = candidate.text[: self.max_chars]
        match = self.regex.search(text)
        shown = self.regex.pattern if len(self.regex.pattern) <= 60 else self.regex.pattern[:57] + "..."
        if self.must_match:
            if match:
                return self.passed(f"matches /{shown}/ at character {match.start()}")
            return self.failed(f"no match for /{shown}/")
        if match:
            found = match.group(0) if len(match.group(0)) <= 40 else match.group(0)[:37] + "..."
            return self.failed(f"contains {found!r}, which /{shown}/ forbids (at character {match.start()})")
        return self.passed(f"no match for the forbidden /{shown}/")


class LengthValidator(Validator):
    """The answer's length is within bounds, in characters and/or words (any bound may be None)."""

    name = "length"

    def __init__(
        self,
        *,
        min_chars: int | None = None,
        max_chars: int | None = None,
        min_words: int | None = None,
        max_words: int | None = None,
    ) -> None:
        for name, value in (("min_chars", min_chars), ("max_chars", max_chars),
                            ("min_words", min_words), ("max_words", max_words)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise ConfigError(f"{name} must be a non-negative integer or None, got {value!r}")
        for unit, low, high in (("chars", min_chars, max_chars), ("words", min_words, max_words)):
            if low is not None and high is not None and low > high:
                raise ConfigError(f"min_{unit} ({low}) is greater than max_{unit} ({high})")
        self.min_chars, self.max_chars = min_chars, max_chars
        self.min_words, self.max_words = min_words, max_words

    def check(self, request: Request, candidate: Candidate) -> Check:
        """Pass when every bound that is set holds."""
        text = candidate.text
        n_chars = len(text)
        n_words = len(words(text)) if self.min_words is not None or self.max_words is not None else None
        if self.min_chars is not None and n_chars < self.min_chars:
            return self.failed(f"{n_chars:,} characters; at least {self.min_chars:,} required")
        if self.max_chars is not None and n_chars > self.max_chars:
            return self.failed(f"{n_chars:,} characters; at most {self.max_chars:,} allowed")
        if n_words is not None and self.min_words is not None and n_words < self.min_words:
            return self.failed(f"{n_words:,} words; at least {self.min_words:,} required")
        if n_words is not None and self.max_words is not None and n_words > self.max_words:
            return self.failed(f"{n_words:,} words; at most {self.max_words:,} allowed")
        counted = f"{n_chars:,} characters" + (f", {n_words:,} words" if n_words is not None else "")
        return self.passed(f"{counted}: within limits")


class InstructionsValidator(Validator):
    """The answer follows every checkable instruction the query states (see ``rerank.instructions``).

    A query that states none passes every candidate.
    """

    name = "instructions"

    def check(self, request: Request, candidate: Candidate) -> Check:
        """Pass when no instruction read from the query is broken; the message lists those that are."""
        instructions = instructions_in(request.query)
        broken = [m for m in (i.check(candidate.content or "") for i in instructions) if m is not None]
        if broken:
            return Check(self.name, False, "; ".join(broken))
        return Check(self.name, True, f"follows {len(instructions)} instruction(s)" if instructions
                     else "the query states no checkable instruction")
