"""Strategies by name, so configs and flags name them as strings (``--strategy controller,random``)."""
from __future__ import annotations

from collections.abc import Sequence

from enas.strategies.base import Strategy
from qnas.errors import UserInputError

STRATEGIES: dict[str, type[Strategy]] = {}


def register_strategy(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator: make ``cls`` available as ``--strategy cls.name``."""
    STRATEGIES[cls.name] = cls
    return cls


def make_strategy(name: str, decisions: Sequence[tuple[str, int]], seed: int = 0, **config) -> Strategy:
    """A fresh strategy over ``decisions`` (a space's ``decisions()``), or a clear message for an unknown name."""
    if name not in STRATEGIES:
        raise UserInputError(f"unknown strategy {name!r}; expected one of: {', '.join(STRATEGIES)}")
    return STRATEGIES[name](decisions, seed=seed, **config)
