"""The reranker: normalisation, gates, weights, ties, strict mode and explanations."""

import numpy as np
import pytest

from rerank import AllCandidatesFailedError, Check, ConfigError, Reranker, Validator
from rerank.reranker import normalise


class StartsWithYes(Validator):
    """A tiny validator for these tests: the answer must start with 'yes'."""

    name = "starts-with-yes"

    def check(self, request, candidate):
        if (candidate.content or "").lower().startswith("yes"):
            return self.passed()
        return self.failed("answer must start with 'yes'")


QUERY = "Is Paris the capital of France?"


def test_best_is_on_topic_and_every_candidate_is_explained():
    ranking = Reranker().rank(QUERY, ["Bananas are yellow.", "Yes, Paris is the capital of France."])
    assert ranking.best_index == 1
    assert ranking.profile == "chat"
    best = ranking.best
    assert best.score == pytest.approx(sum(best.components.values()))
    assert "coverage" not in best.raw  # agreement says nothing in a pair: left out
    assert set(best.raw) == set(ranking.weights)
    assert [c.rank for c in ranking] == [0, 1]
    assert ranking.to_dict()["candidates"][0]["index"] == 0


def test_agreement_scorers_need_a_third_candidate():
    pair = ["Paris is the capital of France.", "Paris is the capital and largest city of France."]
    trio = pair + ["France's capital is Paris."]
    reranker = Reranker(weights={"coverage": 1.0, "consensus": 1.0})
    assert {"coverage", "consensus"}.isdisjoint(reranker.rank(QUERY, pair).best.raw)
    assert {"coverage", "consensus"} <= set(reranker.rank(QUERY, trio).best.raw)


def test_a_failing_candidate_never_outranks_a_passing_one():
    pool = ["Yes.", "Paris is indeed the capital city of France, and its largest city."]
    ranking = Reranker(validators=[StartsWithYes()]).rank(QUERY, pool)
    assert ranking.best_index == 0 and not ranking.all_failed
    assert ranking.candidates[1].checks == (Check("starts-with-yes", False, "answer must start with 'yes'"),)


def test_when_all_fail_the_best_is_still_returned_and_marked():
    ranking = Reranker(validators=[StartsWithYes()]).rank(QUERY, ["No.", "Paris is the capital of France."])
    assert ranking.all_failed and ranking.best_index == 1
    assert ranking.to_dict()["all_failed"] is True


def test_strict_mode_raises_with_the_ranking():
    with pytest.raises(AllCandidatesFailedError) as info:
        Reranker(validators=[StartsWithYes()], strict=True).rank(QUERY, ["No.", "Maybe."])
    assert len(info.value.ranking) == 2


def test_identical_candidates_tie_to_the_lowest_index():
    ranking = Reranker().rank(QUERY, ["Yes, it is.", "Yes, it is.", "Yes, it is."])
    assert [c.index for c in ranking] == [0, 1, 2]


def test_weights_override_and_unknown_weights_are_refused():
    pool = ["Paris France capital capital capital", "Yes: the capital of France is Paris."]
    only_bm25 = Reranker(weights={"relevance": 0, "coverage": 0, "structure": 0, "instructions": 0, "bm25": 1}).rank(
        QUERY, pool)
    assert list(only_bm25.weights) == ["bm25"]
    assert only_bm25.best.components.keys() == {"bm25"}
    with pytest.raises(ConfigError, match="unknown scorer 'nonsense'"):
        Reranker(weights={"nonsense": 1})
    with pytest.raises(ConfigError, match="names no scorer in use"):
        Reranker(scorers=["bm25"], weights={"relevance": 1})
    added = Reranker(weights={"grounding": 2.0}).plan(__import__("rerank").Request("q", context="c"))
    assert {s.name for s, _ in added[1]} >= {"grounding"}
    with pytest.raises(ConfigError, match="finite"):
        Reranker(weights={"bm25": float("nan")})


def test_combine_reweighs_without_measuring_again():
    reranker = Reranker()
    signals = reranker.measure(QUERY, ["Bananas.", "Yes, Paris."])
    assert reranker.combine(signals).best_index == reranker.rank(QUERY, ["Bananas.", "Yes, Paris."]).best_index
    assert reranker.combine(signals, weights={}).best_index == 0  # nothing weighs: the tie goes to #0


def test_profiles_follow_the_request():
    from rerank import Request

    assert Reranker().plan(Request("q", context="ctx"))[0].name == "grounded"
    assert Reranker().plan(Request("q"))[0].name == "chat"


def test_unknown_scorer_and_validator_names_are_config_errors():
    with pytest.raises(ConfigError, match="unknown scorer 'nope'"):
        Reranker(scorers=["nope"])
    with pytest.raises(ConfigError, match="unknown validator 'nope'"):
        Reranker(validators=["nope"])


def test_normalise_does_not_stretch_noise():
    assert np.allclose(normalise(np.array([0.5, 0.5000001]), 0.02), [-2.5e-6, 2.5e-6])
    assert normalise(np.array([1.0]), 0.1).tolist() == [0.0]
    spread = normalise(np.array([0.0, 1.0]), 0.02)
    assert spread.tolist() == [-1.0, 1.0]
