"""Static vectors: the word pieces read word by word (cached) are the tokenizer's pieces of the whole text."""

from __future__ import annotations

import json

import pytest
from conftest import EXAMPLES
from test_embeddings import static_cache  # noqa: F401 - the fixture: static vectors distilled once

from rerank.backends.static import CHARS_PER_TOKEN, GATHERED_TEXTS, static_artifact
from rerank.backends.word_pieces import WordPieces
from rerank.embeddings import Embedder, bundled_model_path

pytestmark = pytest.mark.timeout(2400)

EDGE_CASES = [
    "Hello, World! It's 3.14 (or $5) [x] {y} e.g. U.S.A.", "THE QUICK Brown FOX jumps", "ABC123 1st 2ND",
    "[UNK] stays one token", "x[UNK]y [unk] [Unk] [PAD]", "naïve café, RÉSUMÉ; Straße STRASSE", "ΣΑΣ ΟΔΟΣ İstanbul ı",
    "a,\u0301b \u0301abc", "中文字符，测试。", "ｆｕｌｌ　ｗｉｄｔｈ！", "😀 emoji👍ok", "don’t “quoted” — dash",
    "a\x0bb\x0cc\x85d \x00\ufffd ctrl\x01\x7f", "tab\tnew\nline\r\u2028sep\u3000ideo\u00a0nbsp\u202fnarrow",
    "x" * 300, "a" * 99 + " " + "b" * 101, "HTML <b>bold</b> & C++ i++ a->b", "ﬁ ligature K Å", "",
    "word " * 700, "a\x1cb\x1dc\x1e\x1fd e\x0bf", "Hello[UNK]World, [UNK]. ([PAD]) [UNK]x",
    "MiXeD CaSe 42nd snake_case x2 2x ##ing", "tokenizerization unbelievabilities 123456789 ab12cd34",
]


def example_texts() -> list[str]:
    texts = []
    for path in sorted(EXAMPLES.parent.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            pool = json.loads(line)
            texts += [pool.get("query", ""), pool.get("context") or ""]
            texts += [c if isinstance(c, str) else c.get("content") or "" for c in pool["candidates"]]
    return texts


@pytest.mark.usefixtures("static_cache")
def test_cached_word_pieces_are_the_whole_texts_pieces():
    from tokenizers import Tokenizer

    encoder = Embedder(backend="static").encoder
    reference = Tokenizer.from_file(str(static_artifact(bundled_model_path()) / "tokenizer.json"))
    reference.no_truncation()
    texts = example_texts() + EDGE_CASES
    cut = encoder.max_tokens * CHARS_PER_TOKEN
    expected = [reference.encode(t[:cut], add_special_tokens=False).ids[: encoder.max_tokens] for t in texts]
    assert encoder.pieces(texts) == expected  # a batch, then each text again from the cache
    assert [encoder.pieces([t])[0] for t in texts] == expected
    assert max(map(len, expected)) == encoder.max_tokens  # the cut at max_tokens was exercised


def whole_text_pieces(tokenizer, texts, *, max_tokens=512):
    cut = max_tokens * CHARS_PER_TOKEN
    return [tokenizer.encode(t[:cut], add_special_tokens=False).ids[:max_tokens] for t in texts]


@pytest.mark.usefixtures("static_cache")
def test_word_pieces_stay_the_whole_texts_when_the_cache_starts_again_at_every_call():
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(static_artifact(bundled_model_path()) / "tokenizer.json"))
    texts = example_texts() + EDGE_CASES
    expected = whole_text_pieces(tokenizer, texts)
    # Room for fewer units than the vocabulary's words: every call that meets a new token starts again.
    pieces = WordPieces(tokenizer, max_tokens=512, max_chars=512 * CHARS_PER_TOKEN, capacity=1000)
    assert [pieces.pieces([t])[0] for t in texts] == expected
    assert pieces.pieces(texts) == expected


@pytest.mark.usefixtures("static_cache")
def test_word_pieces_of_a_tokenizer_that_keeps_capitals_are_read_token_by_token():
    from tokenizers import Tokenizer, normalizers

    tokenizer = Tokenizer.from_file(str(static_artifact(bundled_model_path()) / "tokenizer.json"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=False)  # a cased model: no word lower-cased here
    texts = example_texts() + EDGE_CASES
    expected = whole_text_pieces(tokenizer, texts)
    pieces = WordPieces(tokenizer, max_tokens=512, max_chars=512 * CHARS_PER_TOKEN)
    assert pieces.pieces(texts) == expected
    assert [pieces.pieces([t])[0] for t in texts] == expected
    assert expected != whole_text_pieces(Tokenizer.from_file(str(static_artifact(bundled_model_path())
                                                                 / "tokenizer.json")), texts)


@pytest.mark.usefixtures("static_cache")
def test_a_call_of_more_texts_than_are_gathered_at_once_gives_each_texts_own_vector_in_order():
    import numpy as np

    encoder = Embedder(backend="static").encoder
    texts = example_texts() + EDGE_CASES
    texts = (texts * (GATHERED_TEXTS // len(texts) + 2))[: GATHERED_TEXTS + 300]
    texts = [f"{i} {text}" for i, text in enumerate(texts)]  # each one different
    together = encoder.encode(texts)
    assert together.shape == (len(texts), encoder.dimension)
    assert np.array_equal(together, np.concatenate([encoder.encode([t]) for t in texts]))
