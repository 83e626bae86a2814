"""Each scorer on the real model and the real BM25, on pools that should and should not rank."""

import numpy as np

from rerank import Candidate, Request
from rerank.scorers.bm25 import BM25Grounding, BM25Relevance
from rerank.scorers.consensus import Consensus
from rerank.scorers.embedding import EmbeddingGrounding, EmbeddingRelevance

QUERY = Request(query="How do I reset my router password?")
ON_TOPIC = [
    Candidate("Hold the reset button on the router for 30 seconds, then log in with the default password on its label."),
    Candidate("Open the router admin page, go to Administration and set a new router password."),
]
OFF_TOPIC = Candidate("Bananas are rich in potassium and grow in tropical climates.")


def test_relevance_ranks_off_topic_last():
    scores = EmbeddingRelevance().score(QUERY, [ON_TOPIC[0], OFF_TOPIC, ON_TOPIC[1]])
    assert int(np.argmin(scores)) == 1
    assert all(-1.0 <= s <= 1.0 for s in scores)


def test_bm25_on_pool_of_three_ranks_off_topic_last_with_positive_scores():
    scores = BM25Relevance().score(QUERY, [ON_TOPIC[0], OFF_TOPIC, ON_TOPIC[1]])
    assert int(np.argmin(scores)) == 1
    assert min(scores) >= 0  # BM25Okapi gives negative weights on a pool this small


def test_bm25_pool_of_two_sharing_every_term_stays_non_negative():
    pool = [Candidate("reset router password"), Candidate("reset router password now")]
    scores = BM25Relevance().score(Request("reset router password"), pool)
    assert min(scores) > 0


def test_bm25_does_not_apply_to_a_query_of_stop_words_only():
    assert not BM25Relevance().applies(Request(query="what is it"))


def test_grounding_prefers_the_faithful_summary():
    req = Request(query="Summarise.", context="The meeting moved to Tuesday at 10am. Anna will chair it.")
    faithful = Candidate("The meeting is now on Tuesday at 10am, chaired by Anna.")
    invented = Candidate("The meeting was cancelled and the budget was cut by half.")
    for scorer in (EmbeddingGrounding(), BM25Grounding()):
        assert scorer.applies(req)
        first, second = scorer.score(req, [invented, faithful])
        assert second > first, scorer.name
    assert not EmbeddingGrounding().applies(Request("no context"))


def test_consensus_marks_the_outlier():
    pool = [
        Candidate("Paris is the capital of France."),
        Candidate("The capital of France is Paris."),
        Candidate("France's capital city is Paris."),
        Candidate("Berlin hosts the German parliament."),
    ]
    scores = Consensus().score(Request("capital of France?"), pool)
    assert int(np.argmin(scores)) == 3
    assert Consensus().score(Request("q"), pool[:1]) == [0.0]


def test_unicode_texts_score_sensibly():
    req = Request(query="¿Cuál es la capital de Japón?")
    pool = [Candidate("La capital de Japón es Tokio (東京)."), Candidate("Me gusta el fútbol 😀.")]
    assert BM25Relevance().score(req, pool)[0] > BM25Relevance().score(req, pool)[1]
    scores = EmbeddingRelevance().score(req, pool)
    assert scores[0] > scores[1]


def test_coverage_prefers_the_complete_answer_and_ignores_unshared_padding():
    from rerank.scorers.coverage import Coverage

    req = Request("How do I make tea?")
    complete = Candidate("Boil water, pour it over the tea bag, steep three minutes, then remove the bag and add milk.")
    fragment = Candidate("Boil water and pour it over the tea bag.")
    padded = Candidate("Boil water. Tea was first drunk in ancient China by emperors in elaborate ceremonies for centuries.")
    partial = Candidate("Pour boiling water over the tea bag and steep three minutes.")
    scores = Coverage().score(req, [complete, fragment, padded, partial])
    assert int(np.argmax(scores)) == 0
    assert scores[2] < scores[0]  # longer than the fragment, but its extra words are shared by nobody
    assert Coverage().score(req, [complete]) == [0.0]


def test_structure_counts_list_items_and_headings():
    from rerank.scorers.structure import Structure

    pool = [Candidate("## Steps\n1. Boil\n2. Pour\n- Steep"), Candidate("Boil, pour, steep."), Candidate("Cost: 3 - 2 = 1")]
    assert Structure().score(Request("tea?"), pool) == [4.0, 0.0, 0.0]
