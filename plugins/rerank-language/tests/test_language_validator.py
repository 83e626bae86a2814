"""LanguageValidator on real questions and answers in several languages, alone and through rerank."""

from __future__ import annotations

import pytest

import rerank
from rerank import Candidate, ConfigError, Request
from rerank_language import LanguageValidator
from rerank_language.detect import guess, known_languages, prose
from rerank_language.names import LANGUAGE_NAMES

QA = {
    "en": ("How do I sort a list in Python?", "Use the built-in sorted function, which returns a new list in order."),
    "fr": ("Comment trier une liste en Python ?", "Utilisez la fonction sorted, qui renvoie une nouvelle liste triée."),
    "de": ("Wie sortiere ich eine Liste in Python?", "Benutze die eingebaute Funktion sorted, sie gibt eine neue sortierte Liste zurück."),
    "es": ("¿Cómo ordeno una lista en Python?", "Usa la función sorted, que devuelve una nueva lista ordenada."),
    "ru": ("Как отсортировать список в Python?", "Используйте встроенную функцию sorted, она возвращает новый отсортированный список."),
    "zh": ("如何在Python中对列表排序？", "使用内置的 sorted 函数，它会返回一个新的已排序列表。"),
    "ja": ("Pythonでリストを並べ替えるには？", "組み込みの sorted 関数を使うと、並べ替えた新しいリストが返されます。"),
}


def verdicts(query, answers, **options):
    return LanguageValidator(**options).check_pool(Request(query=query), [Candidate(content=a) for a in answers])


def test_every_model_language_has_a_name():
    assert known_languages() == set(LANGUAGE_NAMES)


@pytest.mark.parametrize("lang", sorted(QA))
def test_answer_in_the_question_language_passes_and_others_fail(lang):
    question, answer = QA[lang]
    others = [a for other, (_, a) in sorted(QA.items()) if other != lang]
    checks = verdicts(question, [answer, *others])
    assert checks[0].passed and checks[0].message.startswith(f"answer is in {LANGUAGE_NAMES[lang]} ({lang})")
    assert not any(c.passed for c in checks[1:]), [c.message for c in checks[1:]]


def test_mismatch_message_names_both_languages():
    [check] = verdicts("What is the capital of France?", ["La capitale de la France est Paris, au bord de la Seine."])
    assert check.message == "answer is in French (fr), question is in English (en)"


def test_a_question_too_short_to_tell_is_not_checked():
    [check] = verdicts("Hi", ["Bonjour, comment puis-je vous aider aujourd'hui ?"])
    assert check.passed and "too short to tell" in check.message


def test_code_is_not_read_as_prose():
    question = "Comment inverser une chaîne de caractères en Python ?"
    answer = ("Utilisez le découpage avec un pas négatif :\n```python\n"
              "def reverse_string(text):\n    # return the characters from last to first\n"
              "    return text[::-1]\n```\nCela renvoie une nouvelle chaîne.")
    assert "return" not in prose(answer)
    assert verdicts(question, [answer])[0].passed
    code_only = "```python\nprint('hello world, this is a long enough English comment')\n```"
    assert "too little prose" in verdicts(question, [code_only])[0].message


def test_expected_forces_the_language():
    question = "Summarise this article in French, please."
    french, english = "L'article décrit la croissance des villes européennes.", "The article describes the growth of European cities."
    assert [c.passed for c in verdicts(question, [french, english])] == [False, True]
    checks = verdicts(question, [french, english], expected="fr")
    assert [c.passed for c in checks] == [True, False]
    assert checks[1].message == "answer is in English (en), expected French (fr)"


def test_close_languages_pass_within_tolerance_only():
    question, answer = "Qual é a capital de Portugal?", "A capital de Portugal é Lisboa."
    assert guess(answer).language != "pt"  # the model hears Galician in this short sentence
    assert verdicts(question, [answer])[0].passed
    assert not verdicts(question, [answer], tolerance=1.0)[0].passed
    restricted = guess(answer, languages={"pt", "es", "en"})
    assert restricted.language == "pt"
    assert verdicts(question, [answer], languages=["pt", "es", "en"], tolerance=1.0)[0].passed


def test_bad_options_are_config_errors():
    with pytest.raises(ConfigError, match="unknown language code"):
        LanguageValidator(expected="french")
    with pytest.raises(ConfigError, match="not among"):
        LanguageValidator(expected="fr", languages=["en", "de"])
    with pytest.raises(ConfigError, match="tolerance"):
        LanguageValidator(tolerance=0)


def test_named_language_validator_gates_the_ranking():
    question = "How do I sort a list in Python?"
    candidates = [
        "Pour sort une list en Python, utilisez sorted(list) : sort list Python, sort list.",
        "Call the built-in function on your sequence; it gives back a new ordered copy.",
    ]
    plain = rerank.Reranker(scorers=["bm25"]).rank(question, candidates)
    assert plain.best_index == 0  # on words alone, the French answer wins
    gated = rerank.Reranker(scorers=["bm25"], validators=["language"]).rank(question, candidates)
    assert gated.best_index == 1
    assert gated.by_index()[0].checks[0].message == "answer is in French (fr), question is in English (en)"
