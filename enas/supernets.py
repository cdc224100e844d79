"""Which supernet trains a space: one per space family (``space.family``), picked by the search."""
from __future__ import annotations

from collections.abc import Sequence

from enas.micro_supernet import MicroSupernet
from enas.supernet import Supernet
from qnas.space import Space

SUPERNETS = {"chain": Supernet, "micro": MicroSupernet}
# options only the chain supernet has, with the value that means "off"
CHAIN_ONLY = {"distill_alpha": 0.0, "feature_weight": 0.0}


def make_supernet(space: Space, input_shape: Sequence[int], num_classes: int, seed: int = 0,
                  learning_rate: float = 2e-3, decay_steps: int | None = None,
                  **options) -> Supernet | MicroSupernet:
    """A fresh supernet for every child of ``space`` (the chain supernet for mlp and conv, the cell one for micro).

    ``options`` (``step``, ``distill_alpha``, ``distill_temperature``, ``feature_weight``) go to the chain
    supernet; the cell supernet runs eagerly and takes no distillation.
    """
    if space.family not in SUPERNETS:
        raise ValueError(f"no supernet for spaces of family {space.family!r}; known: {', '.join(SUPERNETS)}")
    if space.family != "chain":
        used = [k for k, off in CHAIN_ONLY.items() if options.get(k, off) != off]
        if used:
            raise ValueError(f"{', '.join(used)} work on the chain spaces (mlp, conv) only, not {space.family!r}")
        options = {}
    return SUPERNETS[space.family](space, input_shape, num_classes, seed=seed, learning_rate=learning_rate,
                                  decay_steps=decay_steps, **options)
