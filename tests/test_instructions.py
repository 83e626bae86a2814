"""The instructions a query states, read from its text and checked against answers."""

from __future__ import annotations

import pytest

from rerank import Reranker
from rerank.instructions import MAX_ANSWER_CHARS, instructions_in, list_items, paragraph_count, sentence_count, word_count

LIST_OF_3 = "Here are three:\n1. Walk daily.\n2. Sleep well.\n3. Eat greens."
LIST_OF_5 = "1. Walk.\n2. Sleep.\n3. Eat.\n4. Drink water.\n5. Rest."

# (query, kind, an answer that follows it, an answer that breaks it)
CASES = [
    ("Describe Paris in at most 10 words.", "word-count", "Paris: lights, art, cafés and the Seine.",
     "Paris is the capital of France, famous for its art, food, fashion and the Eiffel Tower."),
    ("Write at least 12 words about rain.", "word-count",
     "Rain falls softly on the roofs, filling gutters and cooling the warm summer streets.", "Rain is wet."),
    ("Explain gravity in one sentence.", "sentence-count", "Gravity pulls masses toward each other.",
     "Gravity pulls masses together. It keeps planets in orbit."),
    ("Summarise the plot in 2-3 sentences.", "sentence-count", "A boy finds a map. He sails away. He returns rich.",
     "A boy finds a map."),
    ("Write a two paragraph story about a cat.", "paragraph-count", "The cat slept.\n\nThen it woke up and ate.",
     "The cat slept, woke up and ate."),
    ("Write a poem in 4 lines about the sea.", "line-count", "Waves\nfoam\nsalt\nwind", "Waves and foam."),
    ("List three tips for staying healthy.", "item-count", LIST_OF_3, LIST_OF_5),
    ("Answer with exactly 2 bullet points.", "item-count", "- one\n- two", "- one\n- two\n- three"),
    ("Return the result in JSON format.", "json", '{"result": 4}', "The result is 4."),
    ("Compare the two phones in a table.", "table", "| phone | price |\n|---|---|\n| A | 1 |",
     "Phone A costs 1 and phone B costs 2."),
    ("Give the steps as a bulleted list.", "list", "- mix\n- bake", "Mix, then bake."),
    ("Write a poem with a title wrapped in double angular brackets, such as <<poem of joy>>.", "title",
     "<<Sea>>\nWaves roll.", "Sea\nWaves roll."),
    ("Write a note to a friend. At the end, add a postscript starting with P.S.", "postscript",
     "See you soon.\nP.S. Bring cake.", "See you soon."),
    ("Write an address template with at least 2 placeholders in square brackets, like [name].", "placeholders",
     "Dear [name], at [street].", "Dear friend."),
    ("Write a blog post. Include the keywords 'river' and 'stone'.", "keyword",
     "The river ran over the stone.", "The water ran over the rock."),
    ("Describe the weather without using the word 'sunny'.", "forbidden-word", "Bright and clear.",
     "It is sunny and warm."),
    ("Write a tweet. The letter 'z' should appear at least 3 times.", "frequency", "Zany zebras zoom.", "Hello world."),
    ("Reply in all lowercase letters, please.", "lowercase", "hello there.", "Hello there."),
    ("Write a slogan in all capital letters.", "uppercase", "JUST DO IT.", "Just do it."),
    ("Describe a sunset without using any commas.", "no-commas", "The sky turns red and gold.",
     "The sky turns red, orange, and gold."),
    ("Write a story. Start your response with the word 'Once'.", "starts-with", "Once upon a time...", "There was a king."),
    ("Write a letter. End your response with the exact phrase 'Is there anything else I can help with?'",
     "ends-with", "Thanks.\nIs there anything else I can help with?", "Thanks. Goodbye."),
    ("Is water wet? Answer yes or no.", "yes-no", "Yes, it is.", "Water is a liquid."),
    ('Write a riddle. Wrap your entire response with double quotation marks.', "quoted",
     '"What has keys but no locks?"', "What has keys but no locks?"),
]


@pytest.mark.parametrize(("query", "kind", "followed", "broken"), CASES, ids=[c[1] + ":" + c[0][:30] for c in CASES])
def test_each_kind_is_read_from_the_query_and_checked(query: str, kind: str, followed: str, broken: str) -> None:
    found = [i for i in instructions_in(query) if i.kind == kind]
    assert found, f"no {kind} instruction read from {query!r}: {instructions_in(query)}"
    instruction = found[0]
    assert instruction.check(followed) is None
    message = instruction.check(broken)
    assert message is not None and message.startswith(f"asked for {instruction.description}")


@pytest.mark.parametrize("query", [
    "How did US states get their names?",
    "Give me 5 words that rhyme with cat.",
    "Can you come up with a two word name for the challenge?",
    "You are given three words and you need to generate a joke from them.",
    "Construct a regular expression to match any string ending with '@mysite.com'.",
    "The Texans scored 18 points in the second half. Analyse the tone.",
    "Write a Python function that returns the first 10 lines of a file.",
    "",
])
def test_queries_without_a_checkable_instruction_yield_none(query: str) -> None:
    assert [i for i in instructions_in(query) if i.kind != "item-count"] == []


def test_a_count_of_things_to_name_is_not_a_length() -> None:
    kinds = [i.kind for i in instructions_in("Give me 5 words that rhyme with cat, in at most 20 words.")]
    assert kinds == ["word-count"]
    assert instructions_in("Give me 5 words that rhyme with cat, in at most 20 words.")[0].description == "at most 20 words"


def test_lengths_and_bullet_counts_are_read_in_capitals_too() -> None:
    assert [(i.kind, i.description) for i in instructions_in("Answer in TWO SENTENCES.")] == [
        ("sentence-count", "2 sentences")]
    assert [(i.kind, i.description) for i in instructions_in("Use exactly 3 BULLET POINTS.")] == [
        ("item-count", "exactly 3 items")]
    assert [(i.kind, i.description) for i in instructions_in("Give 3 NUMBERED POINTS, in at most 50 Words.")] == [
        ("word-count", "at most 50 words"), ("item-count", "3 items")]


def test_a_unit_spelled_with_a_letter_that_only_matches_ignoring_case_is_read_not_a_crash() -> None:
    # re.I matches "ı" (dotless i) to "i" and "ſ" (long s) to "s"; lower() leaves them as they are.
    assert [(i.kind, i.description) for i in instructions_in("Describe it in 3 lınes.")] == [("line-count", "3 lines")]
    assert [(i.kind, i.description) for i in instructions_in("Answer in two ſentences.")] == [
        ("sentence-count", "2 sentences")]


def test_item_count_passes_an_answer_without_a_list() -> None:
    (instruction,) = instructions_in("Name three elements in the periodic table.")
    assert instruction.check("Hydrogen, helium and lithium.") is None
    assert instruction.check("1. Hydrogen\n2. Helium") is not None


def test_measures() -> None:
    assert word_count("It's a well-known fact, isn't it?") == 6
    assert sentence_count("Title\n\nOne sentence here. Another one! A third?") == 3
    assert paragraph_count("a\n\nb\n***\nc") == 3
    assert list_items("1. a\n   - sub\n   - sub\n2. b") == 2
    assert list_items("no list here") is None


def test_instructions_scorer_gives_the_fraction_followed_and_the_validator_says_why() -> None:
    query = "Describe a sunset in one sentence without using any commas."
    answers = ["The sky burns red and gold.", "The sky burns red, gold, and pink.",
               "The sky burns red. Then night falls, cold and dark."]
    ranking = Reranker(scorers=["instructions"], validators=["instructions"]).rank(query, answers)
    assert [c.raw["instructions"] for c in sorted(ranking.candidates, key=lambda c: c.index)] == [1.0, 0.5, 0.0]
    assert ranking.best_index == 0
    worst = next(c for c in ranking.candidates if c.index == 2)
    (check,) = worst.checks
    assert not check.passed
    assert "asked for 1 sentence, the answer has 2" in check.message
    assert "asked for no commas, the answer has 1" in check.message


def test_validator_passes_every_candidate_when_the_query_states_nothing() -> None:
    ranking = Reranker(scorers=["instructions"], validators=["instructions"]).rank(
        "Tell me about owls.", ["Owls hunt at night.", "Owls, birds of prey, hunt at night."])
    assert all(c.checks[0].passed for c in ranking.candidates)
    assert {c.raw["instructions"] for c in ranking.candidates} == {1.0}


@pytest.mark.timeout(60)
def test_a_hostile_answer_costs_one_pass_not_a_quadratic_search() -> None:
    # A line of 200,000 pipes made the old one-regex table check try every pipe against every
    # later position (about a minute); each check now reads the answer in one pass.
    (table,) = instructions_in("Compare the two phones in a table.")
    assert table.check("|" * MAX_ANSWER_CHARS) is not None
    assert table.check("|" * (MAX_ANSWER_CHARS - 6) + "\n|---|") is None
    (sentences,) = instructions_in("Explain gravity in one sentence.")
    assert sentences.check("A. " * (MAX_ANSWER_CHARS // 3)) is not None
