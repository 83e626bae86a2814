"""SQLValidator on real queries against real schemas, alone and through rerank."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import rerank
from rerank import Candidate, ConfigError, Request
from rerank.cli import main
from rerank_sql import SQLValidator
from rerank_sql.extract import extract_sql
from rerank_sql.schema import parse_schema
from rerank_sql.validator import MAX_DEPTH, MAX_SQL_CHARS

SCHEMA = """The database has these tables:

CREATE TABLE users (
  id INTEGER PRIMARY KEY,
  "Name" TEXT NOT NULL,
  country TEXT,
  UNIQUE (id, country)
);
CREATE TABLE orders (
  id INTEGER PRIMARY KEY,
  user_id INTEGER REFERENCES users(id),
  total REAL,
  created_at TEXT
);
"""
LISTING = "Tables:\n- products(id, title, price REAL)\n- stock(product_id, qty)\n"


def check(sql: str, context: str | None = SCHEMA, dialect: str | None = "sqlite"):
    return SQLValidator(dialect=dialect).check(Request(query="q", context=context), Candidate(content=sql))


def test_schema_is_read_from_create_table_statements_and_listings():
    schema = parse_schema(SCHEMA + "\n" + LISTING, "sqlite")
    assert schema.tables == {
        "users": ("id", "name", "country"),
        "orders": ("id", "user_id", "total", "created_at"),
        "products": ("id", "title", "price"),
        "stock": ("product_id", "qty"),
    }
    assert not parse_schema("Just some prose (with, brackets) and no tables.", None)


@pytest.mark.parametrize("sql", [
    "SELECT name FROM users",
    "SELECT u.name, o.total FROM users AS u JOIN orders AS o ON o.user_id = u.id",
    "SELECT country, COUNT(*) AS n FROM users GROUP BY country ORDER BY n DESC",
    "SELECT country, COUNT(*) AS n FROM users GROUP BY country HAVING n > 1",
    "WITH spend AS (SELECT user_id, SUM(total) AS spent FROM orders GROUP BY user_id) "
    "SELECT u.name, s.spent FROM users u JOIN spend s ON s.user_id = u.id ORDER BY spent DESC",
    "SELECT s.name FROM (SELECT id, name FROM users) AS s WHERE s.id > 3",
    "SELECT name FROM users u WHERE EXISTS (SELECT 1 FROM orders o WHERE o.user_id = u.id)",
    "SELECT u.name, (SELECT COUNT(*) FROM orders o WHERE o.user_id = u.id) AS n FROM users u",
    "SELECT NAME FROM USERS WHERE \"COUNTRY\" = 'fr'",
    "SELECT name, ROW_NUMBER() OVER (PARTITION BY country ORDER BY id) AS rn FROM users",
    "INSERT INTO users (id, name) SELECT user_id, 'x' FROM orders",
    "UPDATE users SET name = 'b' WHERE country = 'fr'",
    "DELETE FROM orders WHERE user_id IN (SELECT id FROM users WHERE country = 'x')",
])
def test_valid_queries_pass(sql):
    result = check(sql)
    assert result.passed, result.message
    assert "only known names" in result.message


@pytest.mark.parametrize("sql, message", [
    ("SELECT email FROM users", "unknown column 'email': users(id, name, country)"),
    ("SELECT u.name, o.totl FROM users u JOIN orders o ON o.user_id = u.id", "unknown column 'totl'"),
    ("SELECT x.name FROM users u", "unknown column x.name"),
    ("SELECT name FROM customers", "unknown table 'customers': the schema has orders, users"),
    ("WITH s AS (SELECT user_id FROM orders) SELECT s.total FROM s", "column 'total' is not available"),
    ("SELECT s.country FROM (SELECT id, name FROM users) AS s", "column 'country' is not available"),
    ("SELECT id FROM users u JOIN orders o ON o.user_id = u.id", "ambiguous column 'id'"),
    ("SELECT name FROM users WHERE id IN (SELECT user_idd FROM orders)", "unknown column 'user_idd'"),
    ("INSERT INTO users (id, nam) VALUES (1, 'a')", "unknown column 'nam' in users("),
    ("UPDATE users SET nam = 'b' WHERE id = 2", "unknown column 'nam' in users("),
    ("DELETE FROM orders WHERE totl < 0", "unknown column 'totl'"),
    ("SELECT name FROM users;\nSELECT bogus FROM orders;", "unknown column 'bogus'"),
])
def test_names_outside_the_schema_fail(sql, message):
    result = check(sql)
    assert not result.passed
    assert message in result.message


def test_listing_schema_is_enforced():
    assert check("SELECT title, price FROM products ORDER BY price", LISTING).passed
    assert "unknown column 'cost'" in check("SELECT * FROM products WHERE cost > 3", LISTING).message


def test_sql_is_found_in_a_fence_or_in_prose():
    fenced = "Here you go:\n```sql\nSELECT name FROM users\n```\nThis lists every name."
    assert extract_sql(fenced).sql == "SELECT name FROM users"
    assert extract_sql("```\nSELECT 1\n```").source == "code block"
    prose = "The query is:\n\nSELECT name\nFROM users;\n\nIt returns the names."
    assert extract_sql(prose).sql == "SELECT name\nFROM users;"
    assert check(fenced).passed
    assert check(prose).passed
    assert "unknown column 'nam'" in check(fenced.replace("name FROM", "nam FROM")).message


def test_unparseable_or_non_sql_answers_fail():
    assert "does not parse as sqlite SQL" in check("SELECT FROM WHERE (").message
    assert "does not parse" in check("I am not sure which table holds that.").message
    assert "not an SQL statement" in check("users").message
    assert check("").message == "no SQL found in the answer"


def test_without_a_schema_only_parsing_is_checked():
    result = check("SELECT anything FROM anywhere", context=None)
    assert result.passed and "names were not checked" in result.message
    assert not check("SELEC anything", context=None).passed


def test_dialect_decides_what_parses():
    assert check("SELECT TOP 3 name FROM users", dialect="tsql").passed
    assert "does not parse as sqlite SQL" in check("SELECT TOP 3 name FROM users", dialect="sqlite").message
    with pytest.raises(ConfigError, match="Unknown dialect 'nosuch'"):
        SQLValidator(dialect="nosuch")


def test_pathological_sql_is_refused_before_parsing():
    deep = "SELECT " + "(" * (MAX_DEPTH + 1) + "1" + ")" * (MAX_DEPTH + 1)
    assert f"more than {MAX_DEPTH} deep" in check(deep).message
    huge = "SELECT " + ", ".join(["name"] * (MAX_SQL_CHARS // 5)) + " FROM users"
    assert "characters; at most" in check(huge).message


def test_named_sql_validator_ranks_a_missing_column_below_a_valid_query():
    request = {"query": "List the names of users from France.", "context": SCHEMA}
    candidates = [
        "SELECT name, email FROM users WHERE country = 'France'",
        "SELECT name FROM users WHERE country = 'France'",
    ]
    ranking = rerank.Reranker(scorers=["bm25"], validators=["sql"]).rank(request, candidates)
    assert ranking.best_index == 1
    failed = ranking.by_index()[0].checks[0]
    assert not failed.passed and "unknown column 'email'" in failed.message


def test_cli_validator_sql(tmp_path):
    line = {"id": "q1", "query": "Names of users from France?", "context": SCHEMA,
            "candidates": ["SELECT name, email FROM users WHERE country = 'France'",
                           "SELECT name FROM users WHERE country = 'France'"]}
    path = tmp_path / "pools.jsonl"
    path.write_text(json.dumps(line) + "\n")
    result = CliRunner().invoke(main, ["score", str(path), "-q", "--validator", "sql", "--scorer", "bm25"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["best_index"] == 1
    assert [c["passed"] for c in out["candidates"]] == [False, True]


def test_schema_in_another_dialect_is_still_read():
    mysql = ("CREATE TABLE `frpm` (\n  `CDSCode` varchar(14) NOT NULL,\n  `Academic Year` text,\n"
             "  PRIMARY KEY (`CDSCode`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;")
    tsql = "CREATE TABLE [dbo].[Users] ([Id] INT IDENTITY(1,1) NOT NULL, [Name] NVARCHAR(MAX)) ON [PRIMARY]"
    assert parse_schema(mysql, "sqlite").tables == {"frpm": ("cdscode", "academic year")}
    assert parse_schema(tsql, "sqlite").tables == {"users": ("id", "name")}
    assert check('SELECT "Academic Year" FROM frpm WHERE CDSCode = \'01\'', mysql).passed
    assert "unknown column 'academic years'" in check('SELECT "Academic Years" FROM frpm', mysql).message
