"""Built-in scorers, one module per signal; the interfaces live in ``base``."""

from .base import Scorer, Validator

__all__ = ["Scorer", "Validator"]
