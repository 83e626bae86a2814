"""SQLValidator: the answer's SQL parses, and names only tables and columns of the given schema."""

from __future__ import annotations

import logging
import re
from typing import Sequence

import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import OptimizeError, ParseError, SqlglotError
from sqlglot.optimizer.qualify import qualify

from rerank import Candidate, Check, ConfigError, Request, Validator

from .extract import extract_sql
from .schema import Schema, parse_schema

log = logging.getLogger(__name__)

MAX_SQL_CHARS = 50_000
"""Longest SQL the validator parses; longer answers fail with a message saying so."""
MAX_DEPTH = 100
"""Deepest bracket nesting the validator parses (the parser recurses on it)."""

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_TOKEN = re.compile(r"<Token token_type: [^,]+, text: (.*?), line: .*?>")
_UNRESOLVED_IN = re.compile(r"Column '([^']+)' could not be resolved for table: '([^']+)'")
_UNRESOLVED = re.compile(r"Column '([^']+)' could not be resolved")
_UNKNOWN = re.compile(r"Unknown column: (\S+)")


class SQLValidator(Validator):
    """The SQL parses in the dialect and names only tables and columns of the schema in context.

    The schema is read from ``request.context``: ``CREATE TABLE`` statements or one-line
    listings like ``users(id, name)``. Without one, only parsing is checked. The SQL is taken
    from the answer's first ```sql block, else its first code block, else the bare text.
    ``dialect`` is any sqlglot dialect name (``sqlite``, ``postgres``, ``mysql``, ...); None is
    sqlglot's generic SQL. Table and column names are compared case-insensitively.
    """

    name = "sql"

    def __init__(self, *, dialect: str | None = None) -> None:
        try:
            Dialect.get_or_raise(dialect)
        except ValueError as exc:
            raise ConfigError(f"sql validator: {exc} Use a sqlglot dialect name such as sqlite, "
                              f"postgres, mysql, bigquery, snowflake or tsql.") from None
        self.dialect = dialect

    @property
    def _dialect_label(self) -> str:
        return self.dialect or "generic"

    def check(self, request: Request, candidate: Candidate) -> Check:
        """Parse the candidate's SQL and resolve its names against the context's schema."""
        return self.check_pool(request, [candidate])[0]

    def check_pool(self, request: Request, candidates: Sequence[Candidate]) -> list[Check]:
        """Verdicts for a pool; the schema is read once."""
        schema = parse_schema(request.context, self.dialect)
        return [self._check(schema, candidate) for candidate in candidates]

    def _check(self, schema: Schema, candidate: Candidate) -> Check:
        found = extract_sql(candidate.content or "")
        if not found.sql:
            return self.failed("no SQL found in the answer")
        if len(found.sql) > MAX_SQL_CHARS:
            return self.failed(f"the SQL is {len(found.sql):,} characters; at most {MAX_SQL_CHARS:,} are checked")
        if _depth(found.sql) > MAX_DEPTH:
            return self.failed(f"the SQL nests brackets more than {MAX_DEPTH} deep; refusing to parse it")
        try:
            statements = [s for s in sqlglot.parse(found.sql, read=self.dialect) if s is not None]
        except ParseError as exc:
            return self.failed(f"the {found.source} does not parse as {self._dialect_label} SQL: {_parse_message(exc)}")
        except (SqlglotError, RecursionError) as exc:
            return self.failed(f"the {found.source} does not parse as {self._dialect_label} SQL: {_clean(exc)}")
        if not statements:
            return self.failed(f"the {found.source} holds no SQL statement")
        for statement in statements:
            problem = _not_a_statement(statement, self._dialect_label)
            if problem:
                return self.failed(f"the {found.source} {problem}")
        if not schema:
            return self.passed(f"parses as {self._dialect_label} SQL; the context gives no schema "
                               f"(CREATE TABLE or table(col, ...)), so names were not checked")
        lowered = [_lowered(statement) for statement in statements]
        for statement in lowered:
            try:
                problem = self._names_problem(statement, schema)
            except _Unchecked as exc:
                return self.passed(f"parses as {self._dialect_label} SQL; names not checked, "
                                   f"sqlglot's qualifier failed ({exc})")
            if problem:
                return self.failed(problem)
        used = sorted({t.name for s in lowered for t in _tables(s)} & set(schema.tables))
        return self.passed(f"parses as {self._dialect_label} SQL and uses only known names"
                           + (f" (tables {', '.join(used)})" if used else ""))

    def _names_problem(self, statement: exp.Expression, schema: Schema) -> str | None:
        ctes = {cte.alias_or_name for cte in statement.find_all(exp.CTE)}
        for table in _tables(statement):
            if table.name not in schema.tables and table.name not in ctes:
                names = sorted(schema.tables)
                shown = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
                return f"unknown table {table.name!r}: the schema has {shown}"
        for target, columns, query in _name_checks(statement):
            if target is not None:
                known = schema.tables.get(target.name)
                for column in columns:
                    if known is not None and column not in known:
                        return f"unknown column {column!r} in {schema.describe(target.name)}"
            if query is None:
                continue
            try:
                qualify(query, schema=schema.for_sqlglot(), dialect=self.dialect,
                        validate_qualify_columns=True, quote_identifiers=False)
            except OptimizeError as exc:
                return _column_message(str(exc), query, schema)
            except (SqlglotError, RecursionError) as exc:
                return f"cannot resolve the names of this query: {_clean(exc)}"
            except Exception as exc:  # noqa: BLE001 - an analyser bug must not reject a candidate
                log.debug("rerank-sql: qualify failed on %s", query.sql(), exc_info=True)
                raise _Unchecked(f"{type(exc).__name__}: {exc}") from exc
        return None


class _Unchecked(Exception):
    """sqlglot's qualifier crashed: the names could not be checked either way."""


def _depth(sql: str) -> int:
    depth = deepest = 0
    for ch in sql:
        if ch == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif ch == ")":
            depth = max(depth - 1, 0)
    return deepest


def _clean(exc: BaseException) -> str:
    text = _TOKEN.sub(lambda m: repr(m.group(1)), _ANSI.sub("", str(exc)))
    return " ".join(text.split()) or type(exc).__name__


def _parse_message(exc: ParseError) -> str:
    if exc.errors:
        first = exc.errors[0]
        near = (first.get("highlight") or "").strip()
        where = f"line {first.get('line')}, column {first.get('col')}"
        description = _clean(Exception(first.get("description") or "syntax error"))
        return f"{description} at {where}" + (f" (near {near!r})" if near else "")
    return _clean(exc)


def _not_a_statement(statement: exp.Expression, dialect: str) -> str | None:
    if isinstance(statement, exp.Command):
        word = str(statement.this).split()[0].upper() if str(statement.this).split() else "this"
        return f"uses {word} syntax that sqlglot cannot parse as {dialect} SQL"
    if isinstance(statement, (exp.Query, exp.DML, exp.DDL)) or not isinstance(
        statement, (exp.Condition, exp.Alias, exp.Identifier, exp.Star, exp.Tuple)
    ):
        return None
    return "is not an SQL statement (it parses as a bare expression)"


def _lowered(statement: exp.Expression) -> exp.Expression:
    """A copy whose identifiers are lower-case and unquoted: names compare case-insensitively."""
    copy = statement.copy()
    for identifier in copy.find_all(exp.Identifier):
        identifier.set("this", identifier.this.lower())
        identifier.set("quoted", False)
    return copy


def _tables(statement: exp.Expression) -> list[exp.Table]:
    """Tables named in the statement (not table functions such as generate_series)."""
    return [t for t in statement.find_all(exp.Table) if isinstance(t.this, exp.Identifier)]


def _name_checks(statement: exp.Expression) -> list[tuple[exp.Table | None, list[str], exp.Expression | None]]:
    """(target table, columns it must have, query to resolve) for each part of a statement.

    Queries are resolved by sqlglot's qualifier; INSERT, UPDATE and DELETE are first rewritten
    into the SELECT that reads the same names.
    """
    if isinstance(statement, exp.Query):
        return [(None, [], statement)]
    if isinstance(statement, exp.Insert):
        target = statement.this
        columns: list[str] = []
        if isinstance(target, exp.Schema):
            columns = [c.name for c in target.expressions]
            target = target.this
        query = statement.expression if isinstance(statement.expression, exp.Query) else None
        return [(target if isinstance(target, exp.Table) else None, columns, query)]
    if isinstance(statement, exp.Update) and isinstance(statement.this, exp.Table):
        sets = [e for e in statement.expressions if isinstance(e, exp.EQ)]
        columns = [e.this.name for e in sets if isinstance(e.this, exp.Column)]
        select = exp.select(*[e.expression.copy() for e in sets] or ["1"]).from_(statement.this.copy())
        select = _with_rest(select, statement)
        return [(statement.this, columns, select)]
    if isinstance(statement, exp.Delete) and isinstance(statement.this, exp.Table):
        select = _with_rest(exp.select("1").from_(statement.this.copy()), statement)
        return [(None, [], select)]
    if isinstance(statement, exp.Create) and isinstance(statement.expression, exp.Query):
        return [(None, [], statement.expression)]
    return []


def _with_rest(select: exp.Select, statement: exp.Expression) -> exp.Select:
    """Carry an UPDATE/DELETE's extra sources (FROM, USING, joins), WHERE and CTEs into ``select``."""
    for key in ("from", "from_", "using"):
        extra = statement.args.get(key)
        if isinstance(extra, exp.From):
            select = select.join(extra.this.copy(), join_type="cross")
        elif isinstance(extra, list):
            for source in extra:
                select = select.join(source.copy(), join_type="cross")
    for join in statement.args.get("joins") or []:
        select = select.join(join.copy())
    where = statement.args.get("where")
    if where is not None:
        select = select.where(where.this.copy())
    with_ = statement.args.get("with") or statement.args.get("with_")
    if with_ is not None:
        select.set("with", with_.copy())
    return select


def _column_message(raw: str, query: exp.Expression, schema: Schema) -> str:
    """Turn the qualifier's message into one naming the column and the tables it could come from."""
    text = _clean(Exception(raw))
    aliases = {t.alias_or_name: t.name for t in _tables(query)}
    in_scope = [name for name in dict.fromkeys(aliases.values()) if name in schema.tables]
    match = _UNRESOLVED_IN.search(text)
    if match:
        column, alias = match.groups()
        table = aliases.get(alias)
        if table in schema.tables:
            return f"unknown column {alias}.{column}: {schema.describe(table)}"
        return f"unknown column {alias}.{column}: no table or alias {alias!r} in scope has it"
    match = _UNRESOLVED.search(text) or _UNKNOWN.search(text)
    if not match:
        return f"cannot resolve the names of this query: {text}"
    column = match.group(1).strip("'\"`")
    holders = [t for t in in_scope if column in schema.tables[t]]
    if len(holders) > 1:
        return f"ambiguous column {column!r}: it is in {' and '.join(holders)}; qualify it (table.{column})"
    if holders:
        return (f"column {column!r} is not available where it is used: {holders[0]} has it, but the "
                f"subquery or CTE it is read from does not select it")
    where = "; ".join(schema.describe(t) for t in in_scope[:4]) or "no table of the schema is in scope"
    return f"unknown column {column!r}: {where}"
