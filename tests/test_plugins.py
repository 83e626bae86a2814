"""Plugins by entry point: discovered, run only when named, and a broken one never breaks the rest.

Uses the two real plugins in plugins/ (installed by `make test`) and throwaway distributions
written into a temporary directory on sys.path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import rerank
from rerank import plugins
from rerank.errors import ConfigError, PluginError, UnknownNameError
from rerank.registry import scorer_class, validator_class

REPO = Path(__file__).resolve().parent.parent
SCHEMA = "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, country TEXT);"
SQL_REQUEST = {"query": "List the names of the users who live in France.", "context": SCHEMA}
SQL_POOL = [
    "SELECT name, email FROM users WHERE country = 'France'",  # email is not a column
    "SELECT name FROM users WHERE country = 'France'",
    "Voici la requête : SELECT nom FROM utilisateurs",  # French, and wrong names
]


def add_distribution(root: Path, name: str, entry_points: dict[str, str]) -> None:
    """A minimal installed distribution (dist-info only) registering ``entry_points``."""
    info = root / f"{name.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    info.joinpath("METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    lines = [f"[{plugins.ENTRY_POINT_GROUP}]"] + [f"{k} = {v}" for k, v in entry_points.items()]
    info.joinpath("entry_points.txt").write_text("\n".join(lines) + "\n")


def test_discovery_lists_both_plugins_with_what_they_provide():
    found = {info.name: info for info in plugins.installed()}
    assert found["sql"].distribution == "rerank-sql" and found["sql"].target == "rerank_sql:SQLValidator"
    assert found["language"].distribution == "rerank-language"
    described = {entry["name"]: entry for entry in plugins.describe()}
    for name, dist in [("sql", "rerank-sql"), ("language", "rerank-language")]:
        entry = described[name]
        assert entry["error"] is None, entry
        assert entry["kind"] == "validator" and entry["distribution"] == dist and entry["version"] == "0.1.0"
        assert entry["summary"] and "\n" not in entry["summary"]


def test_plugins_resolve_by_name_after_the_builtins():
    from rerank_language import LanguageValidator
    from rerank_sql import SQLValidator

    assert validator_class("sql") is SQLValidator
    assert validator_class("language") is LanguageValidator
    with pytest.raises(ConfigError, match="is a validator, not a scorer"):
        scorer_class("sql")
    with pytest.raises(PluginError, match="unknown validator 'nosuch'.*rerank plugins"):
        rerank.Reranker(validators=["nosuch"])


def test_an_unknown_name_is_a_typed_error_that_is_a_config_error_and_a_key_error() -> None:
    for lookup, kind in ((scorer_class, "scorer"), (validator_class, "validator")):
        with pytest.raises(UnknownNameError) as raised:
            lookup("nosuch")
        assert isinstance(raised.value, ConfigError) and isinstance(raised.value, KeyError)
        assert (raised.value.name, raised.value.kind) == ("nosuch", kind)
        assert str(raised.value).startswith(f"unknown {kind} 'nosuch': built-in {kind}s are ")
    with pytest.raises(KeyError):
        rerank.Reranker(scorers=["nosuch"])


def _site_packages_without(tmp_path: Path, hidden: tuple[str, ...]) -> Path:
    """A copy (of symlinks) of site-packages that lacks the ``hidden`` distributions."""
    view = tmp_path / "site"
    view.mkdir()
    roots = {Path(sysconfig.get_paths()[key]).resolve() for key in ("purelib", "platlib")}
    for root in roots:
        for entry in root.iterdir():
            key = entry.name.lower().replace("-", "_")
            if not any(h in key for h in hidden) and not (view / entry.name).exists():
                (view / entry.name).symlink_to(entry)
    return view


RANK_SCRIPT = """
import json, sys
from rerank import Reranker, plugins
request, pool = json.loads(sys.argv[1])
ranking = Reranker(scorers=["bm25", "bm25-grounding"]).rank(request, pool)
print(json.dumps({"plugins": [p.name for p in plugins.installed()], "ranking": ranking.to_dict()}))
"""


@pytest.mark.slow
def test_an_installed_plugin_runs_only_when_named(tmp_path):
    here = rerank.Reranker(scorers=["bm25", "bm25-grounding"]).rank(SQL_REQUEST, SQL_POOL)
    assert all(not c.checks for c in here)
    assert not {"sql", "language"} & set(here.timings)

    # The same ranking in an interpreter where neither plugin is installed at all.
    view = _site_packages_without(tmp_path, ("rerank_sql", "rerank_language"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(view), str(REPO)])}
    done = subprocess.run([sys.executable, "-S", "-c", RANK_SCRIPT, json.dumps([SQL_REQUEST, SQL_POOL])],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    there = json.loads(done.stdout)
    assert {"sql", "language"} <= {p.name for p in plugins.installed()}
    assert not {"sql", "language"} & set(there["plugins"])
    assert there["ranking"] == here.to_dict()

    named = rerank.Reranker(scorers=["bm25", "bm25-grounding"], validators=["sql", "language"]).rank(SQL_REQUEST, SQL_POOL)
    assert [[c.validator for c in s.checks] for s in named] == [["sql", "language"]] * len(SQL_POOL)


def test_a_broken_plugin_fails_by_name_and_the_others_still_load(tmp_path, monkeypatch):
    add_distribution(tmp_path, "broken-plugin", {"broken": "rerank_no_such_module_here:Thing"})
    add_distribution(tmp_path, "odd-plugin", {"notaclass": "os.path:join", "notascorer": "json:JSONDecoder"})
    monkeypatch.syspath_prepend(str(tmp_path))

    assert {"broken", "notaclass", "sql", "language"} <= {i.name for i in plugins.installed()}
    with pytest.raises(PluginError, match=r"plugin 'broken' \(rerank_no_such_module_here:Thing, from broken-plugin\) "
                                          r"failed to load: ModuleNotFoundError"):
        plugins.load("broken")
    with pytest.raises(PluginError, match="plugin 'broken'"):
        rerank.Reranker(validators=["broken"])
    with pytest.raises(PluginError, match="'notaclass'.*is not a class"):
        plugins.load("notaclass")

    described = {entry["name"]: entry for entry in plugins.describe()}
    assert "ModuleNotFoundError" in described["broken"]["error"] and described["broken"]["kind"] is None
    assert "neither a rerank.Scorer nor a rerank.Validator" in described["notascorer"]["error"]
    assert described["sql"]["error"] is None and described["language"]["error"] is None

    ranking = rerank.Reranker(scorers=["bm25"], validators=["sql"]).rank(SQL_REQUEST, SQL_POOL)
    assert ranking.best_index == 1


def test_two_packages_claiming_one_name_is_an_error_not_a_silent_choice(tmp_path, monkeypatch):
    add_distribution(tmp_path, "rerank-sql-fork", {"sql": "rerank_sql:SQLValidator"})
    monkeypatch.syspath_prepend(str(tmp_path))

    with pytest.raises(PluginError, match="'sql' is registered by .*rerank-sql.* and .*rerank-sql-fork"):
        rerank.Reranker(validators=["sql"])
    described = {entry["name"]: entry for entry in plugins.describe()}
    assert "uninstall all but one" in described["sql"]["error"]
    assert described["language"]["error"] is None


def test_sql_plugin_ranks_a_query_naming_a_missing_column_below_a_valid_one():
    ranking = rerank.Reranker(validators=["sql"]).rank(SQL_REQUEST, SQL_POOL[:2])
    assert ranking.best_index == 1
    invalid = ranking.by_index()[0]
    assert invalid.rank == 1 and not invalid.passed
    assert "unknown column 'email'" in invalid.checks[0].message


def test_rerank_plugins_lists_installed_plugins_and_flags_a_broken_one(tmp_path, monkeypatch):
    from click.testing import CliRunner
    from rerank.cli import main

    result = CliRunner().invoke(main, ["plugins"])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.output.splitlines()[1:]}
    assert "validator" in rows["sql"] and "rerank-sql 0.1.0" in rows["sql"]
    assert "validator" in rows["language"] and "rerank-language 0.1.0" in rows["language"]

    add_distribution(tmp_path, "broken-plugin", {"broken": "rerank_no_such_module_here:Thing"})
    monkeypatch.syspath_prepend(str(tmp_path))
    result = CliRunner().invoke(main, ["plugins", "--json"])
    assert result.exit_code == 1
    entries = {e["name"]: e for e in map(json.loads, result.output.splitlines())}
    assert "ModuleNotFoundError" in entries["broken"]["error"]
    assert entries["sql"]["error"] is None and entries["sql"]["kind"] == "validator"
