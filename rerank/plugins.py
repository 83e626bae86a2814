"""Third-party scorers and validators, discovered by entry point and run only when named.

A package registers a class under the ``rerank.scorers`` entry-point group::

    [project.entry-points."rerank.scorers"]
    sql = "rerank_sql:SQLValidator"

The class subclasses :class:`rerank.Scorer` or :class:`rerank.Validator`. Installing a plugin
changes nothing until a user names it (``--validator sql``, ``Reranker(validators=["sql"])``).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

from .errors import PluginError

ENTRY_POINT_GROUP = "rerank.scorers"


@dataclass(frozen=True)
class PluginInfo:
    """An installed plugin as seen without importing it: its name, target and distribution."""

    name: str
    target: str
    distribution: str | None


def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def installed() -> list[PluginInfo]:
    """Every installed plugin, sorted by name; nothing is imported."""
    return [
        PluginInfo(ep.name, ep.value, ep.dist.name if ep.dist else None)
        for ep in sorted(_entry_points().values(), key=lambda ep: ep.name)
    ]


def load(name: str) -> type:
    """Import the plugin called ``name`` and return its class.

    Raises PluginError when no plugin has that name or when importing it fails; the message
    names the plugin and its package, so one broken plugin never hides the others.
    """
    ep = _entry_points().get(name)
    if ep is None:
        raise PluginError(f"no scorer, validator or plugin is called {name!r}")
    try:
        obj = ep.load()
    except Exception as exc:  # any import-time failure of third-party code
        dist = ep.dist.name if ep.dist else "its package"
        raise PluginError(f"plugin {name!r} ({ep.value}, from {dist}) failed to load: {exc!r}") from exc
    if not isinstance(obj, type):
        raise PluginError(f"plugin {name!r} ({ep.value}) is not a class")
    return obj
