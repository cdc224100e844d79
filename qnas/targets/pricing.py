"""Sizes in a deployment target's bytes, for the objective: what the search and EComp compare and budget.

The parent is priced the same way when it is one of the space's own networks; a user's parent, which
the target cannot predict layer by layer, counts as its theoretical size (float32 for a float model).
"""
from __future__ import annotations

from collections.abc import Sequence

from qnas.parent import Parent
from qnas.space import AnyArchitecture, Space
from qnas.targets.base import Target


class SizePricer:
    """``bytes(arch)``: the target's predicted file size of ``arch`` (cached); ``parent_bytes``: the parent's."""

    def __init__(self, target: Target, space: Space, input_shape: Sequence[int], num_classes: int,
                 parent: Parent):
        self.target, self.space = target, space
        self.input_shape, self.num_classes = tuple(int(d) for d in input_shape), int(num_classes)
        self._cache: dict[str, int] = {}
        self.parent_bytes = (target.predict_bytes(parent.arch, space.parent_space(), self.input_shape, self.num_classes)
                             if parent.arch is not None else -(-parent.bits // 8))

    def bytes(self, arch: AnyArchitecture) -> int:
        key = arch.to_string()
        if key not in self._cache:
            self._cache[key] = self.target.predict_bytes(arch, self.space, self.input_shape, self.num_classes)
        return self._cache[key]

    def __call__(self, arch: AnyArchitecture) -> int:
        return self.bytes(arch)
