"""Every exception rerank raises, in one place.

RerankError
├── InputError          a request or candidate is malformed (wrong type, empty pool, too large)
├── ConfigError         an unknown scorer, validator, weight or model; a bad option value
│   └── PluginError     a named plugin is missing or failed to import
│       └── UnknownNameError   no built-in and no plugin has that name (also a KeyError)
├── SandboxError        untrusted code could not be run in the sandbox at all
├── AllCandidatesFailedError   strict mode: no candidate passed every validator
├── GenerationError     no candidate could be generated (carries the upstream errors)
├── AbandonedError      a second Ctrl-C gave up on requests still in flight (exit at once)
└── SendError           one upstream request failed (status, body, what the edge hands back)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # types.py raises these errors; the annotation alone needs Ranking
    from .types import Ranking


class RerankError(Exception):
    """Base class of every error rerank raises."""


class InputError(RerankError, ValueError):
    """A request or a candidate is malformed; the message says which field and why."""


class ConfigError(RerankError, ValueError):
    """An option names something that does not exist or has an invalid value."""


class PluginError(ConfigError):
    """A plugin named by the user is not installed or failed to load."""


class UnknownNameError(PluginError, KeyError):
    """No built-in scorer or validator and no installed plugin has this name.

    Also a ``KeyError``, so ``except KeyError`` around a name lookup catches it. ``name`` is the
    name asked for; ``kind`` is ``"scorer"``, ``"validator"`` or ``""`` (either).
    """

    def __init__(self, message: str, *, name: str, kind: str = "") -> None:
        super().__init__(message)
        self.name = name
        self.kind = kind

    def __str__(self) -> str:  # KeyError's own __str__ would quote the message
        return str(self.args[0])


class SandboxError(RerankError):
    """The sandbox could not start the child process (not: the code under test failed)."""


class AllCandidatesFailedError(RerankError):
    """Strict mode: every candidate failed at least one validator.

    ``ranking`` holds the full ranking so the caller can still inspect every candidate.
    """

    def __init__(self, message: str, ranking: Ranking) -> None:
        super().__init__(message)
        self.ranking = ranking


class GenerationError(RerankError):
    """No candidate could be generated; ``errors`` holds what each attempt raised."""

    def __init__(self, message: str, errors: list[BaseException]) -> None:
        super().__init__(message)
        self.errors = errors


class AbandonedError(RerankError):
    """A run gave up on requests still in flight (a second Ctrl-C); worker threads still wait on them.

    The output holds only whole lines. A normal interpreter exit would join those threads, so the
    command line leaves at once (``os._exit``) with the interrupted exit code.
    """


class SendError(RerankError):
    """One upstream request failed: an HTTP error status, a transport error or a body that is no response.

    ``status`` and ``body`` describe an HTTP error answer (``body`` parsed as JSON when it is);
    ``upstream`` is whatever the caller wants back when every request fails (the middleware
    keeps the HTTP response or exception there, to hand the SDK exactly what it would have got).
    """

    def __init__(self, message: str, *, status: int | None = None, body: object = None,
                 upstream: object = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body
        self.upstream = upstream
