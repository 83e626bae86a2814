"""The ``static`` backend: static token vectors distilled once from the model (model2vec).

Distilling passes every word piece of the model's vocabulary through the transformer once,
reduces the vectors with PCA and weights them by token frequency (model2vec's recipe, about
20 s on 2 cores for all-MiniLM-L6-v2); it needs torch. Encoding is then a tokenizer and a mean
of table rows in numpy: no torch, no transformer.
"""

from __future__ import annotations

import re
from itertools import chain
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import ConfigError
from .artifacts import artifact, stay_offline

CHARS_PER_TOKEN = 12
"""Characters kept per word piece read, before tokenising (generous: a piece averages 4 to 5)."""

PCA_DIMS = 256
"""Dimensions kept by the distillation's PCA (model2vec's default)."""

CACHED_WORDS = 200_000
"""Distinct words whose word pieces are kept (the cache starts again when full)."""

# The characters the BERT tokenizer splits words at: Unicode white space, less the control
# characters among it (\x0b, \x0c, \x85), which its normaliser deletes instead.
_SPACE_CHARS = "\t\n\r \xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_SPACES = re.compile(f"[{_SPACE_CHARS}]+")
# A BERT tokenizer also cuts around every punctuation character; the ASCII ones are cut here
# already, so that "word," and "word." share the cache entry of "word".
_ASCII_PUNCTUATION = r"!-/:-@\[-`{-~"
_BERT_WORDS = re.compile(f"[^{_ASCII_PUNCTUATION}{_SPACE_CHARS}]+|[{_ASCII_PUNCTUATION}]")


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
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()  # pieces() cuts each text at max_tokens itself
        unknown = getattr(self._tokenizer.model, "unk_token", None)
        self._unknown = self._tokenizer.token_to_id(unknown) if unknown else None
        self.dimension = int(self._table.shape[1])
        self._bert = _bert_like(self._tokenizer)
        self._added = [t.content for t in self._tokenizer.get_added_tokens_decoder().values()]
        # A lower-case ASCII word of the vocabulary is its own single piece: known without tokenising.
        self._known: dict[str, list[int]] = {}
        if self._bert:
            self._known = {word: [i] for word, i in self._tokenizer.get_vocab().items()
                           if word.isascii() and (word.isalnum() and word.islower() or word.isdigit()
                                                  or _ASCII_PUNCT_CHAR.fullmatch(word))}
        self._words: dict[str, list[int]] = dict(self._known)

    def _split(self, text: str) -> list[str]:
        """The words of ``text`` (cut at ``max_tokens`` × CHARS_PER_TOKEN characters) whose word
        pieces, end to end, are the text's. For a BERT tokenizer (lower-casing, cutting at white
        space and punctuation) ASCII words are lower-cased and ASCII punctuation marks stand alone,
        as the tokenizer does itself; a text holding an added token (e.g. "[UNK]", matched before
        that) and other tokenizers are cut at white space only."""
        text = text[: self.max_tokens * CHARS_PER_TOKEN]
        if not self._bert or any(token in text for token in self._added):
            return [w for w in _SPACES.split(text) if w]
        if text.isascii():
            return _BERT_WORDS.findall(text.lower())
        return [w.lower() if w.isascii() else w for w in _BERT_WORDS.findall(text)]

    def pieces(self, texts: Sequence[str]) -> list[list[int]]:
        """Each text's word-piece ids, cut at ``max_tokens``. Each distinct word is tokenised once per
        process, all of a call's new words in one batch: the tokenizer treats words apart, so a
        text's pieces are its words' pieces."""
        cache = self._words
        return [list(chain.from_iterable(map(cache.__getitem__, group)))[: self.max_tokens]
                for group in self._cached_words(texts)]

    def _cached_words(self, texts: Sequence[str]) -> list[list[str]]:
        """Each text's words (see :meth:`_split`), every one of them now in the word cache."""
        words = [self._split(text) for text in texts]
        cache = self._words
        new = [w for w in set(chain.from_iterable(words)) if w not in cache]  # any order: words are tokenised apart
        if new:
            if len(cache) + len(new) > CACHED_WORDS:
                cache.clear()
                cache.update(self._known)
            # One string, one call on this thread (a batch call wakes the tokenizer's thread pool,
            # milliseconds on a busy machine); each piece's offset tells which word it came from.
            encoding = self._tokenizer.encode(" ".join(new), add_special_tokens=False)
            starts = np.cumsum([0] + [len(w) + 1 for w in new[:-1]])
            owner = np.searchsorted(starts, [start for start, _ in encoding.offsets], side="right") - 1
            bounds = np.searchsorted(owner, np.arange(len(new) + 1)).tolist()
            ids = encoding.ids
            for i, word in enumerate(new):
                cache[word] = ids[bounds[i] : bounds[i + 1]]
        return words

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors in one call: each text's known word pieces (at most ``max_tokens``, see
        :meth:`pieces`) have their vectors averaged (a text with none gets the zero vector)."""
        cache = self._words
        unknown = -1 if self._unknown is None else self._unknown
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        # Text by text: one text's rows stay in the CPU cache, where a whole batch's would fill memory.
        for i, group in enumerate(self._cached_words(texts)):
            ids = np.fromiter(chain.from_iterable(map(cache.__getitem__, group)), dtype=np.int64)[: self.max_tokens]
            ids = ids[ids != unknown]
            if len(ids):
                out[i] = self._table[ids].sum(axis=0) / np.int64(len(ids))
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms > 0, norms, 1.0)


_ASCII_PUNCT_CHAR = re.compile(f"[{_ASCII_PUNCTUATION}]")


def _bert_like(tokenizer: Any) -> bool:
    """Whether ``tokenizer`` lower-cases and cuts words at white space and punctuation as BERT's
    does, with no added token matched after normalising (so that :meth:`StaticEncoder._split`
    may lower-case and cut ASCII words itself)."""
    from tokenizers import models, normalizers, pre_tokenizers

    return (isinstance(tokenizer.normalizer, normalizers.BertNormalizer) and tokenizer.normalizer.lowercase is True
            and isinstance(tokenizer.pre_tokenizer, pre_tokenizers.BertPreTokenizer)
            and isinstance(tokenizer.model, models.WordPiece)
            and not any(token.normalized for token in tokenizer.get_added_tokens_decoder().values()))
