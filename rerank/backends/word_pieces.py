"""A text's word pieces read token by token from a cache, as the tokenizer gives them for the whole text.

Tokenising costs about 2 µs a word in the Rust tokenizer, and most words recur from text to
text. So a text is cut at white space (where the tokenizer cuts too), each distinct token's
pieces are kept, and a text's pieces are its tokens' pieces end to end, gathered with numpy. A
token never seen before is cut the way a BERT tokenizer cuts it (lower-cased, ASCII punctuation
standing alone): its words are mostly known already (the vocabulary's words are known from the
start), and only words never seen are tokenised, all of a call's in one go.
"""

from __future__ import annotations

import re
from itertools import chain
from typing import Any, Sequence

import numpy as np

CACHED_UNITS = 200_000
"""Distinct tokens and words whose word pieces are kept (the cache starts again when full)."""

# The characters the BERT tokenizer splits words at: Unicode white space, less the control
# characters among it (\x0b, \x0c, \x85), which its normaliser deletes instead.
_SPACE_CHARS = "\t\n\r \xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_SPACES = re.compile(f"[{_SPACE_CHARS}]+")
# White space to str.split() but control characters to a BERT tokenizer, which deletes them: a
# text holding one is cut with _SPACES instead.
_DELETED_SPACES = "\x0b\x0c\x1c\x1d\x1e\x1f\x85"
# A BERT tokenizer also cuts around every punctuation character; the ASCII ones are cut here
# already, so that "word," and "Word." share the cache entry of "word".
_ASCII_PUNCTUATION = r"!-/:-@\[-`{-~"
_BERT_WORDS = re.compile(f"[^{_ASCII_PUNCTUATION}{_SPACE_CHARS}]+|[{_ASCII_PUNCTUATION}]")
_ASCII_PUNCT_CHAR = re.compile(f"[{_ASCII_PUNCTUATION}]")
# The end of a token in a batch of tokens cut at once: never part of a token (white space), it has
# a slot of no pieces.
_SEPARATOR = "\n"
_UNIT_WORDS = re.compile(f"{_SEPARATOR}|{_BERT_WORDS.pattern}")


class WordPieces:
    """Each text's word-piece ids (no special tokens), cut at ``max_chars`` characters then at
    ``max_tokens`` pieces: the ids ``tokenizer`` gives for the whole cut text, from a cache of
    each distinct white-space token's pieces (``capacity`` tokens and words at most). Turns off
    ``tokenizer``'s padding and truncation: many tokens are read in one call, and texts are cut here."""

    def __init__(self, tokenizer: Any, *, max_tokens: int, max_chars: int, capacity: int = CACHED_UNITS) -> None:
        tokenizer.no_padding()
        tokenizer.no_truncation()
        self._tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.max_chars = max_chars
        self._capacity = capacity
        self._bert = bert_like(tokenizer)
        self._added = [t.content for t in tokenizer.get_added_tokens_decoder().values()]
        # A lower-case ASCII word of the vocabulary is its own single piece: known without tokenising.
        self._seed: dict[str, int] = {}
        if self._bert:
            self._seed = {word: i for word, i in tokenizer.get_vocab().items()
                          if _plain(word) or _ASCII_PUNCT_CHAR.fullmatch(word)}
        self._restart()

    def _restart(self) -> None:
        """Forget every token but the vocabulary's words."""
        # Unit (token or word) -> its slot: its pieces are _ids[_starts[slot] : _starts[slot] + _lengths[slot]].
        self._slot: dict[str, int] = dict(zip(self._seed, range(len(self._seed))))
        seed = np.fromiter(self._seed.values(), dtype=np.intp, count=len(self._seed))
        self._ids = _Growing(seed)
        self._starts = _Growing(np.arange(len(seed), dtype=np.intp))
        self._lengths = _Growing(np.ones(len(seed), dtype=np.intp))
        self._add([_SEPARATOR], seed[:0], np.zeros(2, dtype=np.intp))

    def units(self, text: str) -> list[str]:
        """The white-space tokens of ``text`` (cut at ``max_chars``) whose pieces, end to end, are the
        text's; lower-cased when a BERT tokenizer would lower-case them all alike (ASCII text with no
        added token such as "[UNK]", which it matches before lower-casing), so "The" finds "the"."""
        text = text[: self.max_chars]
        if self._bert and text.isascii() and not any(token in text for token in self._added):
            text = text.lower()
        if any(c in text for c in _DELETED_SPACES):
            return [u for u in _SPACES.split(text) if u]
        return text.split()

    def batch(self, texts: Sequence[str]) -> tuple[np.ndarray, list[int]]:
        """Every text's piece ids end to end, and where each text's begin: text ``i``'s pieces are
        ``ids[bounds[i] : bounds[i + 1]]`` (before the cut at ``max_tokens``)."""
        groups = [self.units(text) for text in texts]
        new = set(chain.from_iterable(groups)).difference(self._slot)
        if len(self._slot) + 2 * len(new) > self._capacity:  # a new token may bring a new word too
            self._restart()
            new = set(chain.from_iterable(groups)).difference(self._slot)
        if new:
            self._learn(new)
        counts = [len(group) for group in groups]
        slots = np.fromiter(map(self._slot.__getitem__, chain.from_iterable(groups)), dtype=np.intp,
                            count=sum(counts))
        ids, ends = self._expand(slots)
        unit_bounds = np.cumsum([0] + counts)
        bounds = np.concatenate(([0], ends))[unit_bounds].tolist()
        return ids, bounds

    def pieces(self, texts: Sequence[str]) -> list[list[int]]:
        """Each text's word-piece ids, cut at ``max_tokens``."""
        ids, bounds = self.batch(texts)
        return [ids[start:end][: self.max_tokens].tolist() for start, end in zip(bounds, bounds[1:])]

    def _expand(self, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The pieces of ``slots`` end to end, and where each slot's end."""
        lengths = self._lengths.data[slots]
        ends = np.cumsum(lengths)
        # Piece k of the result is _ids[start of its slot + its place within the slot].
        offsets = np.repeat(self._starts.data[slots] - (ends - lengths), lengths)
        return self._ids.data[offsets + np.arange(len(offsets))], ends

    def _learn(self, units: set[str]) -> None:
        """Give each of ``units`` (none of them known) a slot."""
        plain: list[str] = []  # words the tokenizer would leave as they are: WordPiece reads them alone
        whole: list[str] = []  # units read by the whole tokenizer: words, and what a BERT cut does not apply to
        made: list[str] = []  # other ASCII tokens: several words, or a word in capitals
        other: list[tuple[str, list[str]]] = []  # other tokens of several words
        if not self._bert:
            whole = list(units)
        else:
            # An added token such as "[UNK]" is matched before lower-casing: a unit holding one is read as it is.
            joined = "\n".join(units)
            special = {u for u in units if any(t in u for t in self._added)} if any(
                t in joined for t in self._added) else set()
            for unit in units:
                if unit in special:
                    whole.append(unit)
                elif unit.isascii():
                    (plain if _plain(unit) else made).append(unit)
                else:
                    words = [w.lower() if w.isascii() else w for w in _BERT_WORDS.findall(unit)]
                    if not words or words == [unit]:
                        whole.append(unit)
                    else:
                        other.append((unit, words))
        # Each made token's words, then the separator (a slot of no pieces) that marks its end.
        flat = _UNIT_WORDS.findall("\n".join(made).lower() + _SEPARATOR) if made else []
        for _, words in other:
            flat += words
            flat.append(_SEPARATOR)
        for word in set(flat).difference(self._slot, plain, whole):
            (plain if _plain(word) else whole).append(word)
        if plain:
            self._read_plain(plain)
        if whole:
            self._tokenise(whole)
        if flat:
            slots = np.fromiter(map(self._slot.__getitem__, flat), dtype=np.intp, count=len(flat))
            ids, ends = self._expand(slots)
            unit_ends = ends[slots == self._slot[_SEPARATOR]]
            self._add(made + [unit for unit, _ in other], ids, np.concatenate(([0], unit_ends)))

    def _read_plain(self, words: list[str]) -> None:
        # A BERT tokenizer's normaliser and pre-tokenizer leave a lower-case ASCII word of letters
        # and digits as it is: its model alone gives the word's pieces, at a fifth of the cost.
        tokenize = self._tokenizer.model.tokenize
        pieces = [[token.id for token in tokenize(word)] for word in words]
        ids = np.fromiter(chain.from_iterable(pieces), dtype=np.intp)
        self._add(words, ids, np.cumsum([0] + [len(p) for p in pieces]))

    def _tokenise(self, units: list[str]) -> None:
        # One string, one call on this thread (a batch call wakes the tokenizer's thread pool,
        # milliseconds on a busy machine); each piece's offset tells which unit it came from.
        encoding = self._tokenizer.encode(" ".join(units), add_special_tokens=False)
        starts = np.cumsum([0] + [len(u) + 1 for u in units[:-1]])
        owner = np.searchsorted(starts, [start for start, _ in encoding.offsets], side="right") - 1
        bounds = np.searchsorted(owner, np.arange(len(units) + 1))
        self._add(units, np.asarray(encoding.ids, dtype=np.intp), bounds)

    def _add(self, units: list[str], ids: np.ndarray, bounds: np.ndarray) -> None:
        """New slots: unit ``i``'s pieces are ``ids[bounds[i] : bounds[i + 1]]``."""
        base, first = self._ids.size, self._starts.size
        self._ids.extend(ids)
        self._starts.extend(base + bounds[:-1])
        self._lengths.extend(np.diff(bounds))
        self._slot.update(zip(units, range(first, first + len(units))))


class _Growing:
    """An int array appended to in place, its room doubled when full; ``data`` is the filled part."""

    def __init__(self, values: np.ndarray) -> None:
        self._room = np.zeros(max(1024, 2 * len(values)), dtype=np.intp)
        self.size = 0
        self.data = self._room[:0]
        self.extend(values)

    def extend(self, values: np.ndarray) -> None:
        end = self.size + len(values)
        if end > len(self._room):
            room = np.zeros(2 * end, dtype=np.intp)
            room[: self.size] = self._room[: self.size]
            self._room = room
        self._room[self.size : end] = values
        self.size = end
        self.data = self._room[:end]


def _plain(word: str) -> bool:
    """Lower-case ASCII letters and digits only."""
    return word.isascii() and word.isalnum() and (word.islower() or word.isdigit())


def bert_like(tokenizer: Any) -> bool:
    """Whether ``tokenizer`` lower-cases and cuts words at white space and punctuation as BERT's
    does, with no added token matched after normalising (so that a token may be lower-cased and
    cut at ASCII punctuation before tokenising)."""
    from tokenizers import models, normalizers, pre_tokenizers

    return (isinstance(tokenizer.normalizer, normalizers.BertNormalizer) and tokenizer.normalizer.lowercase is True
            and isinstance(tokenizer.pre_tokenizer, pre_tokenizers.BertPreTokenizer)
            and isinstance(tokenizer.model, models.WordPiece)
            and not any(token.normalized for token in tokenizer.get_added_tokens_decoder().values()))
