"""LanguageValidator: the answer is written in the language of the question."""

from __future__ import annotations

from typing import Collection, Sequence

from rerank import Candidate, Check, ConfigError, Request, Validator

from .detect import MIN_CONFIDENCE, Guess, guess
from .names import LANGUAGE_NAMES, label


class LanguageValidator(Validator):
    """The answer is written in the language of the question, or in an expected one.

    Languages are identified by py3langid over the prose of each text (code blocks, inline code
    and links are left out). A question or answer too short to tell is not checked: the check
    passes and says so. Close languages (Portuguese and Galician, Dutch and Afrikaans) blur on
    short texts, so an answer passes when the wanted language is at least ``tolerance`` times as
    probable as its best guess. ``expected`` (an ISO 639 code such as ``"fr"``) checks every answer
    against that language instead of the question's; ``languages`` limits which languages are
    considered at all.
    """

    name = "language"

    def __init__(
        self,
        *,
        expected: str | None = None,
        languages: Collection[str] | None = None,
        tolerance: float = 0.2,
    ) -> None:
        codes = [expected] if expected is not None else []
        codes += list(languages or ())
        unknown = sorted({c for c in codes if c not in LANGUAGE_NAMES}, key=str)
        if unknown:
            raise ConfigError(
                f"language validator: unknown language code(s) {', '.join(map(repr, unknown))}; "
                f"use ISO 639 codes such as en, fr, de, es, zh (known: {', '.join(sorted(LANGUAGE_NAMES))})"
            )
        if languages is not None and expected is not None and expected not in languages:
            raise ConfigError(f"language validator: expected={expected!r} is not among languages={sorted(languages)}")
        if not 0.0 < tolerance <= 1.0:
            raise ConfigError(f"language validator: tolerance must be in (0, 1], got {tolerance!r}")
        self.expected = expected
        self.languages = frozenset(languages) if languages is not None else None
        self.tolerance = float(tolerance)

    def check(self, request: Request, candidate: Candidate) -> Check:
        """Compare the candidate's language with the question's (or ``expected``)."""
        return self.check_pool(request, [candidate])[0]

    def check_pool(self, request: Request, candidates: Sequence[Candidate]) -> list[Check]:
        """Verdicts for a pool; the question's language is identified once."""
        if self.expected is not None:
            return [self._compare(None, c) for c in candidates]
        question = guess(request.query, languages=self.languages)
        if question is None:
            return [self.passed("the question is too short to tell its language; not checked")] * len(candidates)
        if question.confidence < MIN_CONFIDENCE:
            return [self.passed(
                f"cannot tell the question's language (best guess {label(question.language)} at "
                f"{question.confidence:.0%}); not checked"
            )] * len(candidates)
        return [self._compare(question, c) for c in candidates]

    def _compare(self, question: Guess | None, candidate: Candidate) -> Check:
        want = question.language if question is not None else str(self.expected)
        whose = "expected" if question is None else "question is in"
        answer = guess(candidate.content or "", languages=self.languages)
        if answer is None:
            return self.passed("the answer has too little prose to tell its language; not checked")
        if answer.confidence < MIN_CONFIDENCE:
            return self.passed(
                f"cannot tell the answer's language (best guess {label(answer.language)} at "
                f"{answer.confidence:.0%}); not checked"
            )
        if answer.language == want:
            same = "as expected" if question is None else "as is the question"
            return self.passed(f"answer is in {label(want)}, {same}")
        close = answer.reads_as(want, tolerance=self.tolerance) or (
            question is not None and question.reads_as(answer.language, tolerance=self.tolerance)
        )
        if close:
            return self.passed(f"answer is in {label(answer.language)} or the close {label(want)}; "
                               f"{whose} {label(want)}")
        return self.failed(f"answer is in {label(answer.language)}, {whose} {label(want)}")
