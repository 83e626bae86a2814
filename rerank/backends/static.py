"""The ``static`` backend: static token vectors distilled once from the model (model2vec).

Distilling passes every word piece of the model's vocabulary through the transformer once,
reduces the vectors with PCA and weights them by token frequency (model2vec's recipe, about
20 s on 2 cores for all-MiniLM-L6-v2); it needs torch. Encoding is then a tokenizer and a mean
of table rows in numpy: no torch, no transformer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import ConfigError
from .artifacts import artifact, stay_offline
from .word_pieces import WordPieces

CHARS_PER_TOKEN = 12
"""Characters kept per word piece read, before tokenising (generous: a piece averages 4 to 5)."""

PCA_DIMS = 256
"""Dimensions kept by the distillation's PCA (model2vec's default)."""

GATHERED_TEXTS = 256
"""Texts whose word pieces are gathered at once (bounds the arrays of a large call)."""


def _distill(model: Path, folder: Path) -> None:
    stay_offline()
    try:
        from model2vec.distill import distill
    except ImportError as exc:
        raise ConfigError(f"distilling static embeddings needs model2vec's distill extra and torch ({exc}): "
                          f"pip install 'model2vec[distill]', or run `rerank prepare --embedding-backend "
                          f"static` where they are installed and copy the cache folder") from exc
    distilled = distill(model_name=str(model), pca_dims=PCA_DIMS, device="cpu")
    distilled.save_pretrained(str(folder))


def static_artifact(model: Path) -> Path:
    """The folder of the static model distilled from ``model`` (distilled now if missing)."""
    return artifact("static", model, lambda folder: _distill(model, folder),
                    what="distilling static embeddings")


class StaticEncoder:
    """Unit vectors as the normalised mean of a text's distilled token vectors.

    Reads the artifact model2vec wrote (``model.safetensors`` and ``tokenizer.json``) with
    safetensors, tokenizers and numpy alone: model2vec itself is imported only to distil.
    """

    def __init__(self, model: Path, *, max_tokens: int = 512) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        folder = static_artifact(model)
        try:
            self._table = load_file(str(folder / "model.safetensors"))["embeddings"].astype(np.float32)
            self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        except (OSError, KeyError, Exception) as exc:
            raise ConfigError(f"the static vectors in {folder} cannot be read ({exc}): delete that folder "
                              f"and run `rerank prepare --embedding-backend static`") from exc
        # Static vectors cost nothing per token, so read further than the transformer's 256.
        self.max_tokens = max_tokens
        unknown = getattr(self._tokenizer.model, "unk_token", None)
        self._unknown = self._tokenizer.token_to_id(unknown) if unknown else None
        self.dimension = int(self._table.shape[1])
        self._pieces = WordPieces(self._tokenizer, max_tokens=max_tokens, max_chars=max_tokens * CHARS_PER_TOKEN)

    def pieces(self, texts: Sequence[str]) -> list[list[int]]:
        """Each text's word-piece ids, cut at ``max_tokens`` (see :class:`~.word_pieces.WordPieces`)."""
        return self._pieces.pieces(texts)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors in one call: each text's known word pieces (at most ``max_tokens``, see
        :meth:`pieces`) have their vectors averaged (a text with none gets the zero vector)."""
        unknown = -1 if self._unknown is None else self._unknown
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for first in range(0, len(texts), GATHERED_TEXTS):
            pieces, bounds = self._pieces.batch(texts[first : first + GATHERED_TEXTS])
            some_unknown = bool((pieces == unknown).any())
            # Text by text: one text's rows stay in the CPU cache, where a whole batch's would fill memory.
            for i, (start, end) in enumerate(zip(bounds, bounds[1:]), start=first):
                ids = pieces[start : min(end, start + self.max_tokens)]
                if some_unknown:
                    ids = ids[ids != unknown]
                if len(ids):
                    out[i] = self._table.take(ids, axis=0).sum(axis=0) / np.int64(len(ids))
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms > 0, norms, 1.0)
