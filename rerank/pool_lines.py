"""`rerank score`'s work on one input line: a pool in, its ranking (or its error) out.

Shared by the command line and the Ray stage (:mod:`rerank.ray`), so both write the same objects.
"""

from __future__ import annotations

from typing import Any

from .errors import AllCandidatesFailedError, ConfigError, InputError
from .jsonl import Line
from .types import Ranking

DEFAULT_MAX_CANDIDATES = 256
"""`rerank score`: the largest pool ranked; a larger one is an error line (time and memory grow with it)."""


def score_line(reranker: Any, line: Line, *, max_candidates: int = DEFAULT_MAX_CANDIDATES) -> dict[str, Any]:
    """The output object for one input line: the ranking, or ``{"id", "line", "error"}``.

    Any exception while ranking becomes this line's error; an id that had to be made JSON-safe
    says so in ``"replaced"``.
    """
    if line.error:
        result = {"id": line.id, "line": line.number, "error": line.error}
        return result | ({"replaced": [line.id_note]} if line.id_note else {})
    value = line.value or {}
    candidates = value.get("candidates")
    try:
        if candidates is None:
            raise InputError('missing "candidates": give a list of strings or assistant messages')
        if isinstance(candidates, list) and len(candidates) > max_candidates:
            raise InputError(f"the pool has {len(candidates):,} candidates; at most {max_candidates:,} are "
                             "ranked (--max-candidates)")
        ranking: Ranking = reranker.rank(value, candidates)
    except (InputError, ConfigError) as exc:
        return {"id": line.id, "line": line.number, "error": str(exc)}
    except AllCandidatesFailedError as exc:
        return {"id": line.id, "line": line.number, "error": str(exc), **exc.ranking.to_dict()}
    except Exception as exc:  # noqa: BLE001 - one bad pool must not stop the run
        return {"id": line.id, "line": line.number, "error": f"{type(exc).__name__}: {exc}"}
    return {"id": line.id, "best_index": ranking.best_index, "best": candidates[ranking.best_index],
            **ranking.to_dict()}


def pools_of(max_candidates: int = DEFAULT_MAX_CANDIDATES) -> Any:
    """What ``warmed`` pre-encodes for a line: its (request, candidates), None for an unusable line."""
    def pool_of(line: Line) -> tuple[dict[str, Any], list[Any]] | None:
        candidates = (line.value or {}).get("candidates")
        if not isinstance(candidates, list) or len(candidates) > max_candidates:
            return None
        return line.value or {}, candidates
    return pool_of
