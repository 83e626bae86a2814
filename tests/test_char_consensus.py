"""Character consensus: structured answers agree on how they are written, without any model."""

from __future__ import annotations

import json

import numpy as np
from conftest import EXAMPLES

from rerank import Reranker
from rerank.scorers.char_consensus import CharConsensus, ngram_similarity
from rerank.types import Candidate, Request


def test_ngram_similarity_is_a_cosine_of_character_ngrams():
    similarity = ngram_similarity(["get_weather(city='Paris')", "get_weather(city='Paris')", "zzzz", "ab", ""])
    assert similarity.shape == (5, 5)
    assert np.isclose(similarity[0, 1], 1.0) and np.isclose(similarity[0, 0], 1.0)
    assert similarity[0, 2] == 0.0
    assert not similarity[3:].any() and not similarity[:, 3:].any()  # too short for a 3-gram: agrees with nothing
    assert np.allclose(similarity, similarity.T)
    assert np.isclose(ngram_similarity(["f(x='\ud800')", "f(x='\ud800')"])[0, 1], 1.0)  # a lone surrogate
    # A different argument value shares most of the call's n-grams; a prose answer shares few.
    values = ngram_similarity(["get_weather(city='Paris')", "get_weather(city='Lyon')", "I cannot check the weather."])
    assert values[0, 1] > 0.5 > values[0, 2]


def test_the_call_written_unlike_the_others_scores_lowest():
    request = Request("What is the weather in Paris?", tools=({"type": "function", "function": {"name": "get_weather"}},))
    pool = [Candidate(content=text) for text in [
        "[get_weather(city='Paris')]",
        "[get_weather(city='Paris', unit='celsius')]",
        "Sure! To find out, you would call get_weather with the city set to Paris, like so: get_weather(city=\"Paris\")",
        "[get_weather(city='Paris')]",
    ]]
    scores = CharConsensus().score(request, pool)
    assert int(np.argmin(scores)) == 2
    assert scores[0] == scores[3] and scores[0] > scores[1]
    assert CharConsensus().score(request, pool[:1]) == [0.0]


def test_the_tools_profile_needs_no_embedding():
    pools = [json.loads(line) for line in EXAMPLES.read_text().splitlines()]
    tools = next(p for p in pools if p.get("tools"))
    ranking = Reranker().rank(tools, tools["candidates"])
    assert ranking.profile == "tools"
    assert set(ranking.weights) == {"tool-consensus", "char-consensus", "tool-types"}
    assert "char-consensus" in ranking.best.raw
