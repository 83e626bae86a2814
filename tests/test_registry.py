"""The registry's names are the classes' own: ``--scorer NAME`` builds the scorer whose ``.name`` is NAME."""

from __future__ import annotations

import pytest

from rerank.registry import BUILTIN_SCORERS, BUILTIN_VALIDATORS, scorer_class, validator_class
from rerank.scorers.base import Scorer, Validator


@pytest.mark.parametrize("name", sorted(BUILTIN_SCORERS))
def test_each_builtin_scorer_is_registered_under_its_own_name(name: str) -> None:
    cls = scorer_class(name)
    assert issubclass(cls, Scorer)
    assert cls.name == name


@pytest.mark.parametrize("name", sorted(BUILTIN_VALIDATORS))
def test_each_builtin_validator_is_registered_under_its_own_name(name: str) -> None:
    cls = validator_class(name)
    assert issubclass(cls, Validator)
    assert cls.name == name


def test_no_two_builtins_share_a_class() -> None:
    targets = list(BUILTIN_SCORERS.values()) + list(BUILTIN_VALIDATORS.values())
    assert len(set(targets)) == len(targets)
