"""Language identification with py3langid, whose model ships inside its wheel (nothing is downloaded)."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Collection, Mapping

MAX_CHARS = 4000
"""Prose beyond this many characters is not read: the start of a text shows its language."""
MIN_LETTERS = 8
"""Fewer letters than this (an ideograph or syllable counts 3) is too little to tell a language."""
MIN_CONFIDENCE = 0.2
"""A best guess less probable than this is no guess."""

_NON_PROSE = re.compile(
    r"```.*?(?:```|\Z)"  # fenced code
    r"|`[^`\n]*`"  # inline code
    r"|https?://\S+|www\.\S+"  # links
    r"|\S+@\S+\.\w+",  # e-mail addresses
    re.S,
)
_WIDE_SCRIPTS = 0x2E80  # from here on (CJK, kana, Hangul, ...) one character carries a syllable or word
_NOT_A_LANGUAGE = "zxx"  # py3langid's class for numbers, markup and identifiers


@dataclass(frozen=True)
class Guess:
    """A text's most probable language and the probability of every language."""

    language: str
    probabilities: Mapping[str, float]

    @property
    def confidence(self) -> float:
        """The probability of the best guess."""
        return self.probabilities[self.language]

    def reads_as(self, code: str, *, tolerance: float) -> bool:
        """True when ``code`` is at least ``tolerance`` times as probable as the best guess."""
        return self.probabilities.get(code, 0.0) >= tolerance * self.confidence


def prose(text: str) -> str:
    """The text without code, inline code, links and e-mail addresses, cut to MAX_CHARS."""
    return " ".join(_NON_PROSE.sub(" ", text[: MAX_CHARS * 4]).split())[:MAX_CHARS]


def letter_weight(text: str) -> int:
    """Letters in ``text``, an ideograph, kana or Hangul syllable counting three."""
    return sum(3 if ord(ch) >= _WIDE_SCRIPTS else 1 for ch in text if ch.isalpha())


@functools.lru_cache(maxsize=1)
def _identifier():  # type: ignore[no-untyped-def]
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def known_languages() -> frozenset[str]:
    """Every language code the bundled model can answer."""
    return frozenset(_identifier().labels) - {_NOT_A_LANGUAGE}


def guess(text: str, *, languages: Collection[str] | None = None) -> Guess | None:
    """The language of ``text``'s prose, or None when there is too little prose to tell.

    ``languages`` restricts the answer to those codes (probabilities renormalised over them).
    Text that reads as no language at all (numbers, markup, identifiers) also gives None.
    """
    body = prose(text)
    if letter_weight(body) < MIN_LETTERS:
        return None
    ranked = _identifier().rank(body)
    if ranked[0][0] == _NOT_A_LANGUAGE:
        return None
    probabilities = {c: p for c, p in ranked if c != _NOT_A_LANGUAGE}
    if languages is not None:
        total = sum(p for c, p in probabilities.items() if c in languages)
        if total <= 0:
            return None
        probabilities = {c: p / total for c, p in probabilities.items() if c in languages}
    best = max(probabilities, key=probabilities.__getitem__)
    return Guess(best, probabilities)
