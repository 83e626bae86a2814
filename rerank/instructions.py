"""Checkable instructions stated in a query ("in 3 sentences", "no commas", "end with 'Bye'").

``instructions_in(query)`` reads a query and returns the instructions it states, each able to
say whether an answer follows it. The kinds follow the verifiable instructions of the IFEval
benchmark (counts of words, sentences, paragraphs, lines and list items; formats; keywords;
letter case; punctuation; how the answer starts and ends) plus their everyday phrasings
("list five ...", "answer yes or no"). A query that states none yields no instruction.

Extraction errs on the side of silence: an instruction is only read where the phrasing is
unambiguous, and an answer whose shape cannot be counted (no list at all, say) is not failed.
Only the first ``MAX_QUERY_CHARS`` of a query and ``MAX_ANSWER_CHARS`` of an answer are read.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from typing import Callable, Iterator

MAX_QUERY_CHARS = 20_000
MAX_ANSWER_CHARS = 200_000

_NUMBER_WORDS = {
    "a single": 1, "single": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
    "ninety": 90, "hundred": 100, "a hundred": 100, "one hundred": 100,
}
_NUMBER = r"(\d{1,5}|" + "|".join(sorted((re.escape(w) for w in _NUMBER_WORDS), key=len, reverse=True)) + r")"
_AT_MOST = r"at most|no more than|not more than|less than|fewer than|under|below|within|maximum of|max(?:imum)?|up to|not exceeding|no longer than|shorter than"
_AT_LEAST = r"at least|no less than|not less than|more than|over|minimum of|min(?:imum)?|a minimum of|longer than"
_EXACTLY = r"exactly|precisely|just|only"
_ABOUT = r"about|around|approximately|roughly|~"
_COMPARATOR = rf"(?:(?P<cmp>{_AT_MOST}|{_AT_LEAST}|{_EXACTLY}|{_ABOUT})\s+)?"
_QUOTED = r"[\"“'‘«]([^\"”'’»\n]{1,80})[\"”'’»]"


def number(text: str) -> int:
    """The value of a number written in digits or in words ("three", "a single")."""
    text = text.lower().strip()
    return int(text) if text.isdigit() else _NUMBER_WORDS[text]


@dataclass(frozen=True)
class Instruction:
    """One checkable instruction of a query.

    ``kind`` names the family (``word-count``, ``no-commas``, ...), ``description`` says what was
    asked for ("at most 50 words"), and ``breach(answer)`` returns ``None`` when the answer
    follows it, else what the answer does instead ("the answer has 72").
    """

    kind: str
    description: str
    breach: Callable[[str], str | None]

    def check(self, answer: str) -> str | None:
        """``None`` when ``answer`` follows the instruction, else a message saying how it does not."""
        found = self.breach(answer[:MAX_ANSWER_CHARS])
        return None if found is None else f"asked for {self.description}, {found}"


# Measuring an answer -----------------------------------------------------------------------

_WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?。！？])[\"'”’)\]]*\s+(?=[\"'“‘(\[]*[A-Z0-9\u00C0-\u024F\u0400-\u04FF])")
_LIST_ITEM = re.compile(r"^(?P<indent>[ \t]*)(?:[-*•+]|\d{1,3}[.)]|[a-zA-Z][.)])[ \t]+\S", re.M)
_HEADING = re.compile(r"^\s*#{1,6}\s")
_FENCE = re.compile(r"```.*?(?:```|\Z)", re.S)


def word_count(text: str) -> int:
    """Words in the text (letters and digits, with inner apostrophes and hyphens)."""
    return len(_WORD.findall(text))


def sentence_count(text: str) -> int:
    """Sentences in the prose: ends of sentences before a capital, plus each list item or line."""
    total = 0
    for block in _blocks(text, by_line=True):
        if _HEADING.match(block) or (len(_WORD.findall(block)) < 8 and not re.search(r"[.!?。！？]\W*$", block)):
            continue  # a heading or a title
        total += len([s for s in _SENTENCE_SPLIT.split(block) if _WORD.search(s)])
    return total


def paragraph_count(text: str) -> int:
    """Blocks of text separated by blank lines (or a markdown ``***`` divider)."""
    return len(_blocks(text, by_line=False))


def line_count(text: str) -> int:
    """Non-blank lines."""
    return sum(1 for line in text.splitlines() if line.strip())


def list_items(text: str) -> int | None:
    """Top-level items of the answer's list(s); ``None`` when the answer holds no list."""
    items = [m.group("indent").replace("\t", "    ") for m in _LIST_ITEM.finditer(_FENCE.sub("", text))]
    if len(items) < 2:
        return None
    top = min(len(i) for i in items)
    return sum(1 for i in items if len(i) == top)


def _blocks(text: str, *, by_line: bool) -> list[str]:
    text = _FENCE.sub(" ", text.strip())
    parts = re.split(r"\n\s*\n|^\s*\*\*\*+\s*$" + (r"|\n" if by_line else ""), text, flags=re.M)
    return [p.strip() for p in parts if p and _WORD.search(p)]


def _strip_wrapping(text: str) -> str:
    """The answer without surrounding white space, markdown emphasis or quotes."""
    return text.strip().strip("*_`\"'“”‘’ \n\t")


# Comparisons --------------------------------------------------------------------------------

def _bounds(cmp: str | None, n: int, *, loose_exact: bool) -> tuple[float, float]:
    cmp = (cmp or "").lower()
    if re.fullmatch(_AT_MOST, cmp):
        return 0, n if cmp not in {"less than", "fewer than", "under", "below", "shorter than"} else n - 0.5
    if re.fullmatch(_AT_LEAST, cmp):
        return (n + 0.5 if cmp in {"more than", "over", "longer than"} else n), float("inf")
    if re.fullmatch(_ABOUT, cmp) or (loose_exact and not cmp):
        return max(1, n * 0.5), n * 1.5 + 2
    return n, n


def _describe(cmp: str | None, n: int, unit: str) -> str:
    noun = unit if n == 1 else unit + "s"
    return f"{cmp} {n} {noun}" if cmp else f"{n} {noun}"


def _count_instruction(kind: str, unit: str, cmp: str | None, n: int, measure: Callable[[str], int], *,
                       loose_exact: bool) -> Instruction:
    return _bounded(kind, _describe(cmp, n, unit), *_bounds(cmp, n, loose_exact=loose_exact), measure)


def _bounded(kind: str, description: str, low: float, high: float, measure: Callable[[str], int]) -> Instruction:
    def breach(answer: str) -> str | None:
        got = measure(answer)
        return None if low <= got <= high else f"the answer has {got}"

    return Instruction(kind, description, breach)


# Extractors: each reads the query and yields the instructions of one family ----------------

_LENGTH_UNITS = {
    "word": ("word-count", word_count, True),
    "sentence": ("sentence-count", sentence_count, False),
    "paragraph": ("paragraph-count", paragraph_count, False),
    "line": ("line-count", line_count, False),
}
_UNIT_NAMES = {unit[0]: unit for unit in _LENGTH_UNITS}
_RANGE = rf"(?:between\s+)?(?P<low>{_NUMBER})\s*(?:-|–|to|and)\s*"
_LENGTH = re.compile(
    rf"(?P<intro>\b(?:in|using|with|within|into|keep\s+it\s+to|limit(?:ed)?\s+(?:it\s+)?to)\s+(?:a\s+|an\s+)?)?"
    rf"\b{_COMPARATOR}(?:{_RANGE})?(?P<n>{_NUMBER})(?P<joint>\s*-\s*|\s+)(?P<unit>word|sentence|paragraph|line)s?\b"
    rf"(?P<after>\s+(?:or\s+(?:less|fewer|more)|and\s+(?:no|not)\s+more|max(?:imum)?|long|in\s+length|or\s+so)\b)?"
    rf"(?P<tail>\s+[a-z]+)?",
    re.I,
)
_WHOLE_TEXTS = frozenset(
    "story essay poem summary response answer reply description paragraph introduction explanation bio "
    "biography review letter email message article post tweet speech text overview synopsis abstract "
    "statement note report pitch advertisement ad caption limerick haiku song joke narrative piece "
    "definition conclusion outline intro".split()
)
_FUNCTION_WORDS = frozenset(
    "about on for or and to that which who describing explaining summarizing summarising each per with without "
    "in of from as so max maximum long please only at the total is are it or".split()
)
_CONDITIONAL = re.compile(r"(?:^|[.!?:;\n]\s*)[^.!?:;\n]*\b(?:if|when|whenever|each\s+time)\b[^.!?\n]*$", re.I)


# What _LENGTH and _BULLETS cannot match without (the same case-folding): a query lacking it skips
# their scan, ten times its cost.
_LENGTH_UNIT = re.compile(r"word|sentence|paragraph|line", re.I)
_BULLET_WORD = re.compile(r"bullet|numbered", re.I)


def _lengths(query: str) -> Iterator[Instruction]:
    if not _LENGTH_UNIT.search(query):
        return
    for m in _LENGTH.finditer(query):
        if _CONDITIONAL.search(query[: m.start()][-200:]):
            continue  # "if the player reads a note, show it in two paragraphs": not the whole answer
        # Named by its first letter: re.I also matches "lıne" (dotless i) and "ſentence" (long s).
        unit = _UNIT_NAMES[m.group("unit")[0].casefold()]
        n, cmp = number(m.group("n")), m.group("cmp")
        after = (m.group("after") or "").strip().lower()
        tail = (m.group("tail") or "").strip().lower()
        if m.group("low"):  # a range: "2-3 sentences", "between 100 and 150 words"
            low = number(m.group("low"))
            kind, measure, _ = _LENGTH_UNITS[unit]
            yield _bounded(kind, f"{low} to {n} {unit}s", low, n, measure)
            continue
        if after.startswith(("or less", "or fewer", "and no", "and not", "max")):
            cmp = "at most"
        elif after.startswith("or more"):
            cmp = "at least"
        noun = tail and tail not in _FUNCTION_WORDS
        if cmp:
            if tail in {"that", "which", "each", "per"}:
                continue  # "at least 3 words that rhyme": words of each item
        elif noun and tail not in _WHOLE_TEXTS:
            continue  # "a two word name": the length of a part, not of the answer
        elif not (m.group("intro") or noun):
            continue  # "give me 5 words that rhyme": a count of things, not a length
        kind, measure, loose = _LENGTH_UNITS[unit]
        yield _count_instruction(kind, unit, cmp, n, measure, loose_exact=loose)


_ITEM_VERBS = (r"list|give|provide|name|suggest|generate|write|create|come\s+up\s+with|share|offer|recommend|"
               r"identify|enumerate|outline|brainstorm|mention|tell\s+me|state|describe|explain|what\s+are|"
               r"find|compose|produce|make|choose|pick|select|propose|cite|summari[sz]e")
_ITEM_COUNT = re.compile(
    rf"\b(?:{_ITEM_VERBS})\b(?:\s+(?:me|us|out|down|the|a\s+list\s+of|a\s+total\s+of|a\s+few|some|only|top|exactly))*"
    rf"\s+{_NUMBER}\s+(?!(?:word|sentence|paragraph|line|minute|hour|day|week|month|year|second|time|page|"
    rf"character|letter|percent|dollar|step)s?\b)(?P<noun>[a-z][a-z-]+)",
    re.I,
)
_BULLETS = re.compile(rf"\b{_COMPARATOR}{_NUMBER}\s+(?:bullet(?:ed)?\s*points?|bullets|numbered\s+(?:points|items))\b", re.I)


def _item_counts(query: str) -> Iterator[Instruction]:
    seen = False
    for m in _BULLETS.finditer(query) if _BULLET_WORD.search(query) else ():
        n = number(m.group(2))
        if n >= 2:
            seen = True
            yield _items_instruction(m.group("cmp"), n)
    if seen:
        return
    for m in _ITEM_COUNT.finditer(query):
        n = number(m.group(1))
        noun = m.group("noun").lower()
        if 2 <= n <= 30 and noun.endswith("s") and not noun.endswith("ss"):
            yield _items_instruction(None, n)
            return


def _items_instruction(cmp: str | None, n: int) -> Instruction:
    low, high = _bounds(cmp, n, loose_exact=False)

    def breach(answer: str) -> str | None:
        got = list_items(answer)
        return None if got is None or low <= got <= high else f"the answer lists {got}"

    return Instruction("item-count", _describe(cmp, n, "item"), breach)


_TABLE_RULE = re.compile(r"\s*\|?\s*:?-{3,}")


def has_table(text: str) -> bool:
    """A markdown table: a line with a ``|`` followed by a ``---`` rule line (one pass over the lines)."""
    lines = text.splitlines()
    return any("|" in row and _TABLE_RULE.match(rule) for row, rule in zip(lines, lines[1:]))


def _has_items(answer: str) -> str | None:
    return None if list_items(answer) else "the answer has no list"


def _formats(query: str) -> Iterator[Instruction]:
    low = query.lower()
    if re.search(r"\b(?:in|as|using|with|into)\s+(?:a\s+|valid\s+)?json\b|\bjson\s+(?:format|object|output)\b", low) \
            and not re.search(r"\bjson\b.{0,40}\b(?:file|string|parse|schema\s+for)\b", low):
        yield Instruction("json", "JSON", _json_breach)
    if re.search(r"\b(?:in|as|into|using|with|create|make|draw|format\w*\s+as)\s+(?:a\s+)?(?:markdown\s+)?table\b", low):
        yield Instruction("table", "a table", lambda a: None if has_table(a) else "the answer has no table")
    if re.search(r"\b(?:in|as|using|with|use)\s+(?:a\s+)?(?:markdown\s+)?(?:bullet(?:ed)?\s*(?:points?|list)|numbered\s+list)", low):
        yield Instruction("list", "a list", _has_items)
    if "<<" in query and ">>" in query and re.search(r"\btitle\b", low):
        yield Instruction("title", "a title in <<double angular brackets>>",
                          lambda a: None if re.search(r"<<[^\n<>]+>>", a) else "the answer has no <<title>>")
    if re.search(r"\bp\.\s?s\.|\bpostscript\b", low):
        yield Instruction("postscript", "a postscript (P.S.)",
                          lambda a: None if re.search(r"\bp\.\s?p?\.?\s?s\.", a, re.I) else "the answer has none")
    m = re.search(rf"\b(?:at\s+least\s+)?{_NUMBER}\s+placeholders?\b", low)
    if m:
        n = number(m.group(1))
        yield _count_instruction("placeholders", "[placeholder]", "at least", n,
                                 lambda a: len(re.findall(r"\[[^\[\]\n]+\]", a)), loose_exact=False)
    m = re.search(rf"\bhighlight\w*\s+(?:at\s+least\s+)?{_NUMBER}\s+(?:sections?|parts?)\b", low)
    if m:
        n = number(m.group(1))
        yield Instruction("highlights", f"at least {n} *highlighted* sections",
                          lambda a: None if len(re.findall(r"\*[^*\n]+\*", a)) >= n else "the answer has fewer")
    if re.search(r"\bwrap\w*\s+(?:your\s+)?(?:entire\s+|whole\s+)?(?:response|answer|output)\s+(?:with|in)\s+double\s+quot", low):
        yield Instruction("quoted", "the whole answer in double quotes",
                          lambda a: None if a.strip()[:1] in "\"“" and a.strip()[-1:] in "\"”" else "it is not")


def _json_breach(answer: str) -> str | None:
    text = answer.strip()
    fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", text, re.S)
    try:
        json.loads(fenced.group(1) if fenced else text)
    except (ValueError, RecursionError):
        return "the answer is not JSON"
    return None


def _keywords(query: str) -> Iterator[Instruction]:
    include = re.compile(rf"\b(?:include|use|contain|mention|incorporate)s?\s+(?:the\s+)?(?:key\s*)?(?:words?|terms?|phrases?|keywords?)\s+((?:{_QUOTED}(?:\s*,\s*|\s+and\s+|\s*,\s*and\s+)?)+)", re.I)
    avoid = re.compile(rf"\b(?:(?:do\s+not|don't|never|without|avoid|not)\s+(?:use|using|include|including|mention|mentioning|say|saying)|refrain\s+from\s+using)\s+(?:the\s+|any\s+of\s+the\s+)?(?:key\s*)?(?:words?|terms?|phrases?|keywords?)\s+((?:{_QUOTED}(?:\s*,\s*|\s+or\s+|\s+and\s+|\s*,\s*(?:or|and)\s+)?)+)", re.I)
    for pattern, wanted in ((avoid, False), (include, True)):
        for m in pattern.finditer(query):
            for word in re.findall(_QUOTED, m.group(1)):
                yield _keyword_instruction(word.strip(), wanted)
    for m in re.finditer(rf"\bthe\s+(?:word|letter)\s+{_QUOTED}\s+(?:should|must|to)\s+appear\s+{_COMPARATOR}{_NUMBER}\s+times?", query, re.I):
        yield _frequency_instruction(m.group(1), m.group("cmp"), number(m.group(3)))


def _keyword_instruction(word: str, wanted: bool) -> Instruction:
    pattern = re.compile(r"(?<!\w)" + re.escape(word) + r"(?!\w)", re.I)

    def breach(answer: str) -> str | None:
        found = bool(pattern.search(answer))
        if found == wanted:
            return None
        return "the answer lacks it" if wanted else "the answer uses it"

    return Instruction("keyword" if wanted else "forbidden-word", f"{'' if wanted else 'no '}{word!r}", breach)


def _frequency_instruction(word: str, cmp: str | None, n: int) -> Instruction:
    low, high = _bounds(cmp or "at least", n, loose_exact=False)
    single_letter = len(word) == 1
    pattern = re.compile(re.escape(word) if single_letter else r"(?<!\w)" + re.escape(word) + r"(?!\w)", re.I)

    def breach(answer: str) -> str | None:
        got = len(pattern.findall(answer))
        return None if low <= got <= high else f"the answer has it {got} times"

    return Instruction("frequency", f"{word!r} {cmp or 'at least'} {n} times", breach)


def _letter_case(query: str) -> Iterator[Instruction]:
    low = query.lower()
    if re.search(r"\b(?:all|only|entirely|entire\s+\w+\s+(?:should|must)\s+be)\s+(?:in\s+)?(?:english\s+(?:and\s+)?)?(?:in\s+)?(?:all\s+)?(?:lower\s*case|lowercase)"
                 r"|\bno\s+capital\s+letters\b|\bin\s+lowercase(?:\s+letters)?\b", low):
        yield Instruction("lowercase", "all lowercase", lambda a: None if a == a.lower() else "the answer has capitals")
    elif re.search(r"\b(?:all|only|entirely)\s+(?:in\s+)?(?:capital\s+letters|caps|upper\s*case)|\bin\s+(?:all\s+)?(?:capital\s+letters|caps|uppercase)\b", low):
        yield Instruction("uppercase", "all capital letters", lambda a: None if a == a.upper() else "the answer has lowercase letters")


def _punctuation(query: str) -> Iterator[Instruction]:
    if re.search(r"\b(?:without(?:\s+using)?|no|refrain\s+from\s+(?:the\s+use\s+of|using)|do\s+not\s+use|don't\s+use|avoid(?:\s+using)?)\s+(?:any\s+)?commas?\b", query, re.I):
        yield Instruction("no-commas", "no commas", lambda a: None if "," not in a else f"the answer has {a.count(',')}")


def _start_end(query: str) -> Iterator[Instruction]:
    start = re.search(rf"\b(?:start|begin)\w*\s+(?:(?:your\s+|the\s+)?(?:response|answer|reply|it|output|text|story|poem|email|letter)\s+with\s+(?:the\s+)?(?:exact\s+)?(?:word|phrase|sentence|words)?|with\s+the\s+(?:exact\s+)?(?:word|phrase|sentence|words))\s*:?\s*{_QUOTED}", query, re.I)
    if start:
        phrase = start.group(1).strip()
        yield Instruction("starts-with", f"an answer starting with {phrase!r}",
                          lambda a: None if _strip_wrapping(a).lower().startswith(phrase.lower().strip("*_\"'"))
                          else "it starts otherwise")
    end = re.search(rf"\b(?:end|finish|conclude)\w*\s+(?:(?:your\s+|the\s+)?(?:response|answer|reply|it|output|text|story|poem|email|letter)\s+with\s+(?:the\s+|this\s+)?(?:exact\s+)?(?:word|phrase|sentence|words)?|with\s+(?:the\s+|this\s+)(?:exact\s+)?(?:word|phrase|sentence|words))\s*:?\s*{_QUOTED}", query, re.I)
    if end:
        phrase = end.group(1).strip().rstrip(".!?")
        yield Instruction("ends-with", f"an answer ending with {phrase!r}",
                          lambda a: None if _strip_wrapping(a).rstrip(".!? \n").lower().endswith(phrase.lower())
                          else "it ends otherwise")


def _yes_no(query: str) -> Iterator[Instruction]:
    if re.search(r"\b(?:answer|respond|reply)\s+(?:only\s+)?(?:with\s+)?(?:a\s+)?(?:simple\s+)?[\"'“]?yes[\"'”]?\s+or\s+[\"'“]?no[\"'”]?\b", query, re.I):
        yield Instruction("yes-no", "a yes or no answer",
                          lambda a: None if re.match(r"(?:my\s+answer\s+is\s+)?(?:yes|no)\b", _strip_wrapping(a), re.I)
                          else "the answer starts otherwise")


_EXTRACTORS: tuple[Callable[[str], Iterator[Instruction]], ...] = (
    _lengths, _item_counts, _formats, _keywords, _letter_case, _punctuation, _start_end, _yes_no,
)


def instructions_in(query: str) -> list[Instruction]:
    """Every checkable instruction the query states, once each, in the order they were found."""
    return list(_read_instructions(query[:MAX_QUERY_CHARS]))


@functools.lru_cache(maxsize=1024)
def _read_instructions(query: str) -> tuple[Instruction, ...]:
    # Cached: the scorer and the validator (once per candidate) read the same query.
    found: dict[tuple[str, str], Instruction] = {}
    for extract in _EXTRACTORS:
        for instruction in extract(query):
            found.setdefault((instruction.kind, instruction.description), instruction)
    return tuple(found.values())
