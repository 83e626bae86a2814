"""The database schema a text-to-SQL answer must use, read from the request's context.

Two forms are understood, and may be mixed: ``CREATE TABLE`` (and ``CREATE VIEW ... AS SELECT``)
statements, and one-line listings such as ``users(id, name, email)`` (a type word may follow
each name: ``users(id INT, name TEXT)``). Other text is ignored.
Names are kept lower-cased: the validator compares them case-insensitively.
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

log = logging.getLogger(__name__)

_CREATE = re.compile(
    r"^[ \t]*CREATE\s+(?:OR\s+REPLACE\s+)?(?:(?:GLOBAL|LOCAL)\s+)?(?:TEMP(?:ORARY)?\s+)?(?:TABLE|VIEW)\b",
    re.I | re.M,
)
_NAME = r"[`\"\[]?([A-Za-z_][\w$]*(?:\.[A-Za-z_][\w$]*)*)[`\"\]]?"
_LISTING = re.compile(rf"^[ \t]*(?:[-*][ \t]+)?{_NAME}[ \t]*\(([^()\n]*)\)[ \t]*;?[ \t]*$", re.M)
_FALLBACK_DIALECTS = ("mysql", "sqlite", "postgres", "tsql", "bigquery")
_COLUMN = re.compile(rf"^\s*{_NAME}(?:\s+[A-Za-z]\w*)?\s*$")  # a name, maybe a type word


@dataclass(frozen=True)
class Schema:
    """Tables (lower-cased name) to their columns (lower-cased), and statements that failed to parse."""

    tables: dict[str, tuple[str, ...]] = field(default_factory=dict)
    skipped: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.tables)

    def for_sqlglot(self) -> dict[str, dict[str, str]]:
        """The mapping ``sqlglot.optimizer.qualify`` takes; types do not matter for names."""
        return {table: {column: "UNKNOWN" for column in columns} for table, columns in self.tables.items()}

    def describe(self, table: str, *, limit: int = 12) -> str:
        """``users(id, name, ...)`` for messages."""
        columns = self.tables.get(table, ())
        shown = ", ".join(columns[:limit]) + (", ..." if len(columns) > limit else "")
        return f"{table}({shown})"


def _statement_end(text: str, start: int) -> int:
    """Where the statement opening at ``start`` ends: a ``;`` or blank line outside brackets and quotes."""
    depth, quote, i = 0, "", start
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"`":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(depth - 1, 0)
        elif depth == 0 and (ch == ";" or text.startswith("\n\n", i)):
            return i
        i += 1
    return len(text)


def _table_name(table: exp.Table) -> str:
    return table.name.lower()


def _from_create(statement: exp.Expression) -> tuple[str, tuple[str, ...]] | None:
    if not isinstance(statement, exp.Create):
        return None
    target = statement.this
    if isinstance(target, exp.Schema) and isinstance(target.this, exp.Table):
        columns = [c.name.lower() for c in target.expressions if isinstance(c, exp.ColumnDef)]
        return _table_name(target.this), tuple(dict.fromkeys(columns))
    if isinstance(target, exp.Table) and isinstance(statement.expression, exp.Query):
        columns = [c.lower() for c in statement.expression.named_selects if c and c != "*"]
        return _table_name(target), tuple(dict.fromkeys(columns))
    return None


def _parse_create(text: str, dialect: str | None) -> tuple[str, tuple[str, ...]] | None:
    """A CREATE statement's table and columns, read in ``dialect`` or else in common dialects.

    The schema is given, not generated: it may well be written in another dialect (MySQL
    backticks, T-SQL brackets) than the one the answers must use.
    """
    for read in dict.fromkeys((dialect, *_FALLBACK_DIALECTS)):
        try:
            parsed = _from_create(sqlglot.parse_one(text, read=read))
        except (SqlglotError, RecursionError):
            continue
        if parsed is not None:
            return parsed
    return None


@functools.lru_cache(maxsize=16)
def parse_schema(context: str | None, dialect: str | None = None) -> Schema:
    """The schema described in ``context``; an empty Schema when it describes none.

    Cached, since every candidate of a pool shares one context.
    """
    if not context:
        return Schema()
    tables: dict[str, tuple[str, ...]] = {}
    skipped: list[str] = []
    spans: list[tuple[int, int]] = []
    for match in _CREATE.finditer(context):
        if spans and match.start() < spans[-1][1]:
            continue
        end = _statement_end(context, match.start())
        spans.append((match.start(), end))
        text = context[match.start():end]
        parsed = _parse_create(text, dialect)
        if parsed is None:
            skipped.append(" ".join(text.split())[:80])
        else:
            tables[parsed[0]] = parsed[1]
    outside = "".join(
        context[a:b] for a, b in zip([0] + [e for _, e in spans], [s for s, _ in spans] + [len(context)])
    )
    for match in _LISTING.finditer(outside):
        items = [_COLUMN.match(item) for item in match.group(2).split(",")]
        if all(items) and items:
            name = match.group(1).rsplit(".", 1)[-1].lower()
            tables.setdefault(name, tuple(dict.fromkeys(m.group(1).lower() for m in items if m)))
    if skipped:
        log.warning("rerank-sql: %d schema statement(s) in the context did not parse and were "
                    "ignored, first: %s", len(skipped), skipped[0])
    return Schema(tables, tuple(skipped))
