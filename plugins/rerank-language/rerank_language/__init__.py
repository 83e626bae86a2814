"""rerank-language: a rerank validator that the answer is in the question's language, as ``language``.

``rerank score pools.jsonl --validator language`` or ``rerank.Reranker(validators=["language"])``.
"""

from .validator import LanguageValidator

__all__ = ["LanguageValidator"]
