"""Fenced code blocks in an answer (```lang ... ``` or ~~~), and the Python program they hold.

Everything here is static: text is read with ``re``, never executed.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass

PYTHON_TAGS = frozenset({"python", "py", "python3", "py3", "ipython", "pycon"})

_FENCE = re.compile(r"(`{3,}|~{3,})(?:[ \t]*([\w+#.-]*)[ \t]*\n)?(.*?)(?:\1|\Z)", re.S)


@dataclass(frozen=True)
class Block:
    """One fenced code block: its language tag (lower case, may be empty) and its dedented body."""

    lang: str
    body: str


def fenced_blocks(text: str) -> list[Block]:
    """The fenced code blocks of ``text`` in order (```lang ... ``` or ~~~); an unclosed fence runs to the end."""
    return [
        Block((m.group(2) or "").lower(), textwrap.dedent(m.group(3)).strip("\n"))
        for m in _FENCE.finditer(text)
        if m.group(3).strip()
    ]


def extract_code(text: str) -> str:
    """The Python program in an answer: its ```python blocks joined, else its untagged blocks, else the bare text.

    An answer whose only fenced blocks are in another language holds no Python: ``""``.
    """
    blocks = fenced_blocks(text)
    if not blocks:
        return textwrap.dedent(text).strip("\n") if text.strip() else ""
    for wanted in (lambda lang: lang in PYTHON_TAGS, lambda lang: lang == ""):
        chosen = [b.body for b in blocks if wanted(b.lang)]
        if chosen:
            return "\n\n".join(chosen)
    return ""
