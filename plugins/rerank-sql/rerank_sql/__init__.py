"""rerank-sql: a rerank validator for text-to-SQL answers, registered as ``sql``.

``rerank score pools.jsonl --validator sql`` or ``rerank.Reranker(validators=["sql"])``.
"""

from .validator import SQLValidator

__all__ = ["SQLValidator"]
