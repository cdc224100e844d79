"""Sizes and latencies on a deployment target, for the objective: what the search and EComp compare and budget.

The parent is priced the same way when it is one of the space's own networks; a user's parent, which
the target cannot predict layer by layer, counts as its theoretical size (float32 for a float model),
and its latency as that of the space's own float parent.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from qnas.errors import UserInputError
from qnas.parent import Parent
from qnas.space import AnyArchitecture, Space
from qnas.targets.base import Target
from qnas.targets.latency import LatencyTable


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


def latency_problem(target: Target, space: Space) -> str | None:
    """None when ``target`` has a per-layer latency table for networks of ``space``; otherwise why not."""
    if space.family != "chain":
        return (f"the {space.name} space has no per-layer latency table (its cells are not a chain of layers); "
                f"predicted latency works on the chain spaces (mlp, conv)")
    if target.theoretical:
        return (f"target {target.name!r} is a theoretical count with no file to time; "
                f"use --target lce or --target tflite_int8")
    return None


class LatencyPricer:
    """``ms(arch)``: ``arch``'s single-image latency on the target here, predicted by the per-layer table (cached).

    ``parent_ms`` is the parent's, the reference of the latency ratio: the space's float parent when the
    parent is a user's model (``reference``: which). Table entries missing from ``<cache_dir>/latency/``
    are measured when first needed (``qnas.targets.latency``); ``table`` replaces the measured table (tests).
    """

    def __init__(self, target: Target, space: Space, input_shape: Sequence[int], num_classes: int,
                 parent: Parent, cache_dir: str | Path = "cache", table: LatencyTable | None = None):
        problem = latency_problem(target, space)
        if problem:
            raise UserInputError(problem)
        self.target, self.space = target, space
        self.input_shape, self.num_classes = tuple(int(d) for d in input_shape), int(num_classes)
        self.table = table if table is not None else LatencyTable(target, Path(cache_dir))
        self._cache: dict[str, float] = {}
        parent_space = space.parent_space()
        self.reference = "the parent" if parent.arch is not None else "the space's float parent"
        parent_arch = parent.arch if parent.arch is not None else parent_space.parent_arch()
        self.parent_ms = self.table.predict(parent_arch, parent_space, self.input_shape, self.num_classes)

    def ms(self, arch: AnyArchitecture) -> float:
        key = arch.to_string()
        if key not in self._cache:
            self._cache[key] = float(self.table.predict(arch, self.space, self.input_shape, self.num_classes))
        return self._cache[key]

    def ratio(self, arch: AnyArchitecture) -> float:
        """``ms(arch)`` over the parent's."""
        return self.ms(arch) / self.parent_ms if self.parent_ms > 0 else 1.0

    def __call__(self, arch: AnyArchitecture) -> float:
        return self.ms(arch)
