"""Find the SQL in a candidate answer: a ```sql block, another code block, or the bare text."""

from __future__ import annotations

import re
from dataclasses import dataclass

_FENCE = re.compile(r"^[ \t]*```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)(?:^[ \t]*```|\Z)", re.S | re.M)
_SQL_LABELS = frozenset(
    "sql sqlite sqlite3 postgres postgresql psql pgsql plpgsql mysql mariadb tsql mssql plsql oracle "
    "bigquery snowflake duckdb spark sparksql hive presto trino redshift clickhouse databricks athena "
    "teradata doris starrocks".split()
)
_STATEMENT_START = re.compile(
    r"^[ \t]*(?:WITH|SELECT|INSERT|UPDATE|DELETE|MERGE|CREATE|ALTER|DROP|REPLACE|VALUES|PRAGMA)\b",
    re.I | re.M,
)


@dataclass(frozen=True)
class Extracted:
    """The SQL found in an answer and where it was found (for messages)."""

    sql: str
    source: str


def extract_sql(text: str) -> Extracted:
    """The first ```sql block; else the first unlabelled code block; else the bare text.

    Bare text that opens with prose is cut to the first line starting with an SQL keyword,
    up to the next blank line.
    """
    fences = [(label.lower(), body) for label, body in _FENCE.findall(text)]
    for label, body in fences:
        if label in _SQL_LABELS:
            return Extracted(body.strip(), f"```{label} block")
    for label, body in fences:
        if not label:
            return Extracted(body.strip(), "code block")
    stripped = text.strip()
    match = _STATEMENT_START.search(stripped)
    if match is None or match.start() == 0:
        return Extracted(stripped, "answer")
    rest = stripped[match.start():]
    return Extracted(re.split(r"\n[ \t]*\n", rest, maxsplit=1)[0].strip(), "answer")
