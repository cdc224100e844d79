"""The ENAS controller as a strategy: an LSTM policy (``enas.controller``) improved by REINFORCE on the rewards."""
from __future__ import annotations

import numpy as np

from enas.controller import Controller, ControllerConfig
from enas.strategies.base import Decisions, Strategy
from enas.strategies.registry import register_strategy


@register_strategy
class ControllerStrategy(Strategy):
    """Proposals sampled from the policy; ``tell`` is one REINFORCE update; the greedy decode is its pick."""

    name = "controller"

    def __init__(self, decisions, seed: int = 0, **config):
        super().__init__(decisions, seed)
        self.controller = Controller(ControllerConfig(decisions=tuple(self.decisions), seed=seed, **config))

    def ask(self, n: int) -> list[Decisions]:
        return self.controller.sample(n)

    def tell(self, proposals, rewards) -> dict[str, float]:
        return self.controller.update(proposals, rewards)

    def best_guess(self) -> Decisions:
        return self.controller.greedy()

    def probabilities(self) -> list[np.ndarray]:
        return self.controller.probabilities()
