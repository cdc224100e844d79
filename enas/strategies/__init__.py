"""Search strategies behind one ask/tell interface; each algorithm is one module that registers itself.

A new strategy is one new module here (a ``Strategy`` subclass decorated with ``register_strategy``)
plus its import below.
"""
from enas.strategies import controller, evolution, random  # noqa: F401  (each registers itself)
from enas.strategies.base import Decisions, Strategy
from enas.strategies.registry import STRATEGIES, make_strategy, register_strategy

__all__ = ["STRATEGIES", "Decisions", "Strategy", "make_strategy", "register_strategy"]
