"""The ``torch`` backend: the sentence-transformers model run as it ships."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import ConfigError
from .artifacts import stay_offline


class TransformerEncoder:
    """Unit vectors from a local sentence-transformers model on torch (``device``: cpu by default)."""

    def __init__(self, model: Path, *, device: str = "cpu", batch_size: int = 32, **options: object) -> None:
        stay_offline()
        try:
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging
        except ImportError as exc:
            raise ConfigError(f"the torch embedding backend needs sentence-transformers ({exc}): install it, "
                              f"or choose --embedding-backend static") from exc

        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # transformers leaves it unannotated
        try:
            self._model = SentenceTransformer(str(model), device=device, **options)  # type: ignore[arg-type]
        except Exception as exc:
            raise ConfigError(
                f"could not load embedding model {str(model)!r} offline: {exc}. Give a local "
                f"sentence-transformers model directory, or omit the option to use the bundled one."
            ) from exc
        self.batch_size = batch_size
        self.max_tokens = int(self._model.max_seq_length or 0)
        dimension = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        self.dimension = int(dimension() or 0)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors, one batch call; the tokenizer cuts each text at ``max_tokens`` word pieces."""
        vectors = self._model.encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True,
            convert_to_numpy=True, show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)
