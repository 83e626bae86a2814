"""Third-party scorers and validators, discovered by entry point and run only when named.

A package registers a class under the ``rerank.scorers`` entry-point group::

    [project.entry-points."rerank.scorers"]
    sql = "rerank_sql:SQLValidator"

The class subclasses :class:`rerank.Scorer` or :class:`rerank.Validator`. Installing a plugin
changes nothing until a user names it (``--validator sql``, ``Reranker(validators=["sql"])``).
A plugin that fails to import raises :class:`~rerank.errors.PluginError` when it is asked for,
and only then; the others keep working.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from .errors import PluginError, UnknownNameError
from .scorers.base import Scorer, Validator

ENTRY_POINT_GROUP = "rerank.scorers"


@dataclass(frozen=True)
class PluginInfo:
    """An installed plugin as seen without importing it: its name, target and distribution."""

    name: str
    target: str
    distribution: str | None
    version: str | None = None


def _info(ep: EntryPoint) -> PluginInfo:
    dist = ep.dist
    return PluginInfo(ep.name, ep.value, dist.name if dist else None, dist.version if dist else None)


def _grouped() -> dict[str, list[EntryPoint]]:
    """Entry points by name; a name with several entries is a conflict between distributions."""
    grouped: dict[str, list[EntryPoint]] = {}
    seen: set[tuple[str, str, str | None]] = set()
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        key = (ep.name, ep.value, ep.dist.name if ep.dist else None)
        if key not in seen:  # the same distribution reached through two sys.path entries
            seen.add(key)
            grouped.setdefault(ep.name, []).append(ep)
    return grouped


def installed() -> list[PluginInfo]:
    """Every installed plugin, sorted by name (then distribution); nothing is imported."""
    infos = [_info(ep) for eps in _grouped().values() for ep in eps]
    return sorted(infos, key=lambda i: (i.name, i.distribution or ""))


def _describe_conflict(name: str, eps: list[EntryPoint]) -> str:
    infos = sorted(map(_info, eps), key=lambda i: (i.distribution or "", i.target))
    who = " and ".join(f"{i.distribution or 'an unknown package'} ({i.target})" for i in infos)
    return (f"plugin {name!r} is registered by {who}: uninstall all but one, "
            f"so that the name means one thing")


def load(name: str) -> type:
    """Import the plugin called ``name`` and return its class.

    Raises UnknownNameError (a PluginError) when no plugin has that name; PluginError when two
    installed packages claim it, or when importing it fails; the message names the plugin and its package, so one broken plugin
    never hides the others.
    """
    eps = _grouped().get(name)
    if not eps:
        raise UnknownNameError(f"no scorer, validator or plugin is called {name!r}", name=name)
    if len(eps) > 1:
        raise PluginError(_describe_conflict(name, eps))
    ep = eps[0]
    dist = ep.dist.name if ep.dist else "its package"
    try:
        obj = ep.load()
    except Exception as exc:  # any import-time failure of third-party code
        raise PluginError(
            f"plugin {name!r} ({ep.value}, from {dist}) failed to load: {exc!r}; "
            f"reinstall {dist} or uninstall it"
        ) from exc
    if not isinstance(obj, type):
        raise PluginError(f"plugin {name!r} ({ep.value}, from {dist}) is not a class: "
                          f"the entry point must name a Scorer or Validator subclass")
    return obj


def _kind(cls: type) -> str:
    if issubclass(cls, Validator):
        return "validator"
    if issubclass(cls, Scorer):
        return "scorer"
    raise PluginError(f"{cls.__module__}.{cls.__qualname__} is neither a rerank.Scorer "
                      f"nor a rerank.Validator subclass")


def _summary(cls: type) -> str:
    doc = inspect.getdoc(cls) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def describe() -> list[dict[str, Any]]:
    """What `rerank plugins` shows: one entry per installed plugin, sorted by name.

    Each entry has ``name``, ``kind`` ("scorer" or "validator"), ``distribution``, ``version``,
    ``target`` (``module:Class``), ``summary`` (the first line of the class docstring) and
    ``error``: None, or why the plugin cannot be used, in which case ``kind`` and ``summary`` are
    None. Every plugin is imported; one that fails is reported, never raised.
    """
    grouped = _grouped()
    out = []
    for info in installed():
        entry: dict[str, Any] = {
            "name": info.name, "kind": None, "distribution": info.distribution,
            "version": info.version, "target": info.target, "summary": None, "error": None,
        }
        try:
            if len(grouped[info.name]) > 1:
                raise PluginError(_describe_conflict(info.name, grouped[info.name]))
            cls = load(info.name)
            entry["kind"], entry["summary"] = _kind(cls), _summary(cls)
        except PluginError as exc:
            entry["error"] = str(exc)
        out.append(entry)
    return out
