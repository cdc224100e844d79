"""Deployment targets: what a network costs, and how it runs, in the file a user ships.

A target answers three questions for every hidden layer, from the architecture alone (no model):

* ``runs_as(type_code, first, kind)``: the precision the layer runs at in the target's artifact
  (``binary`` = bit-packed, ``int8``, ``float32``; the ``bits`` target answers with the type itself);
* ``layer_cost(...)``: the bytes it adds to the file (its kernel at that precision, plus the
  per-channel numbers and bookkeeping the format stores with it);
* ``predict_bytes(arch, space, input_shape, num_classes)``: the whole file, including a fixed overhead.

and it makes the artifact: ``export(model, space, arch, path, calibration_images)``, then runs it:
``predict(path, x)``. Targets are registered by name; ``get_target`` gives a clear error for an
unknown name and for a target whose converter is not installed (naming the extra to install).
The byte constants of each target were fitted to files its converter wrote (see its module).
"""
from __future__ import annotations

import itertools
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from qnas.arch import Architecture
from qnas.errors import UserInputError
from qnas.models import CONV_KERNEL
from qnas.space import SearchSpace, Space
from qnas.targets.cells import predict_cell_bytes
from quantize.types import LAYER_TYPES


@dataclass(frozen=True)
class LayerCost:
    """What one layer costs in a target's file: the precision it runs at and its bytes."""

    precision: str
    weight_bytes: float  # the kernel at that precision
    other_bytes: float  # per-channel parameters (bias, scales, zero points), operator and tensor records

    @property
    def bytes(self) -> float:
        return self.weight_bytes + self.other_bytes


@dataclass(frozen=True)
class LayerSlot:
    """One hidden layer of an architecture, in context: what its cost and latency depend on."""

    index: int
    kind: str  # "dense" or "conv"
    type_code: int
    width: int
    fan_in: int  # input features (dense) or input channels (conv)
    first: bool
    pool: bool
    input_hw: tuple[int, int]  # spatial size of its input (1, 1) for dense
    precision: str = ""  # how it runs on the target (filled by ``Target.slots``)
    before: str = "float32"  # how its producer runs ("float32" for the image)
    after: str = ""  # how its consumer runs (the head's precision after the last layer)

    @property
    def kernel_elements(self) -> int:
        taps = CONV_KERNEL * CONV_KERNEL if self.kind == "conv" else 1
        return self.fan_in * self.width * taps


def layer_slots(arch: Architecture, space: SearchSpace, input_shape: Sequence[int]) -> list[LayerSlot]:
    """The hidden layers of ``arch`` with their fan-in, position, pooling and input size."""
    shape = tuple(int(d) for d in input_shape)
    if space.kind == "dense":
        fan_in, hw = int(np.prod(shape)), (1, 1)
    else:
        fan_in = shape[2] if len(shape) == 3 else 1
        hw = (shape[0], shape[1])
    pools = space.pool_after(len(arch))
    slots = []
    for i, layer in enumerate(arch.layers):
        slots.append(LayerSlot(i, space.kind, layer.type_code, layer.width, fan_in, i == 0, i in pools, hw))
        fan_in = layer.width
        if i in pools:
            hw = (hw[0] // 2, hw[1] // 2)
    return slots


class Target(ABC):
    """One way to ship a network (see the module docstring)."""

    name: str = ""
    description: str = ""
    extra: str | None = None  # the pip extra that installs its converter, if any
    theoretical: bool = False  # True: sizes are a count, not a file
    head_precision: str = "float32"
    # fitted byte constants of cell networks (``qnas.targets.cells``); None: the target does not ship cells
    cell_bytes: dict[str, float] | None = None

    # -- availability ----------------------------------------------------------------------------
    def unavailable(self) -> str | None:
        """None when the target can export here; otherwise why not and what to install."""
        return None

    def require(self) -> None:
        """Raise ``UserInputError`` with the install hint when the target cannot export here."""
        reason = self.unavailable()
        if reason:
            raise UserInputError(f"target {self.name!r} is not usable here: {reason}")

    def unsupported(self, space: Space) -> str | None:
        """None when the target can price and ship networks of ``space``; otherwise why not."""
        if space.family == "chain" or self.cell_bytes is not None:
            return None
        return (f"target {self.name!r} cannot ship the {space.name} space's networks (its converter does not read "
                f"their quantized cell operations); use --target lce or --target bits")

    def require_space(self, space: Space) -> None:
        """Raise ``UserInputError`` when the target cannot ship networks of ``space``."""
        reason = self.unsupported(space)
        if reason:
            raise UserInputError(reason)

    # -- pricing ----------------------------------------------------------------------------------
    @abstractmethod
    def runs_as(self, type_code: int, first: bool, kind: str) -> str:
        """The precision a layer of this type and position runs at in the target's artifact."""

    def cell_precision(self, type_code: int) -> str:
        """How a cell network's file stores a full convolution of this type (default: as a later chain layer runs)."""
        return self.runs_as(type_code, False, "conv")

    def plan(self, slots: Sequence[LayerSlot]) -> list[str]:
        """How each layer runs in context (default: ``runs_as`` layer by layer; a target may look at neighbours)."""
        return [self.runs_as(s.type_code, s.first, s.kind) for s in slots]

    def slots(self, arch: Architecture, space: SearchSpace, input_shape: Sequence[int]) -> list[LayerSlot]:
        """``layer_slots`` with each layer's precision and its neighbours' filled in."""
        raw = layer_slots(arch, space, input_shape)
        precisions = self.plan(raw)
        chain = ["float32", *precisions, self.head_precision]
        return [replace(s, precision=p, before=chain[i], after=chain[i + 2])
                for i, (s, p) in enumerate(zip(raw, precisions))]

    @abstractmethod
    def layer_cost(self, slot: LayerSlot) -> LayerCost:
        """Bytes one hidden layer (a slot from ``slots``, precision filled) adds to the file (see ``LayerCost``)."""

    @abstractmethod
    def head_bytes(self, fan_in: int, num_classes: int, kind: str) -> float:
        """Bytes of the classifier head (Dense on the last hidden layer's features, softmax)."""

    @abstractmethod
    def overhead_bytes(self, kind: str) -> float:
        """The file's fixed part: header, operator codes, signature, input and output tensors."""

    def default_types(self) -> tuple[int, ...]:
        """The layer types worth searching on this target (types it stores no smaller than a better one are dropped)."""
        return tuple(LAYER_TYPES)

    def transition_bytes(self, before: str, after: str) -> float:
        """Bytes of the operator a target inserts between two precisions (quantize, dequantize)."""
        return 0.0

    def file_bytes(self, slots: Sequence[LayerSlot], kind: str) -> float:
        """Per-file bytes that depend on which kinds of operator the file uses (its operator-code table)."""
        return 0.0

    def precisions(self, arch: Architecture, space: SearchSpace) -> list[str]:
        """How each hidden layer of ``arch`` runs on this target."""
        shape = (4, 4, 1) if space.kind == "conv" else (4,)  # precisions do not depend on the image size
        return self.plan(layer_slots(arch, space, shape))

    def predict_bytes(self, arch: Architecture, space: SearchSpace, input_shape: Sequence[int],
                      num_classes: int) -> int:
        """The predicted size of the target's file for ``arch`` (bytes)."""
        if space.family != "chain":
            self.require_space(space)
            return predict_cell_bytes(self.cell_bytes, space, arch, input_shape, num_classes, self.cell_precision)
        slots = self.slots(arch, space, input_shape)
        total = self.overhead_bytes(space.kind) + self.file_bytes(slots, space.kind)
        total += sum(self.layer_cost(s).bytes for s in slots)
        fan_in = slots[-1].width if slots else _flat_size(space, input_shape)
        total += self.head_bytes(fan_in, num_classes, space.kind)
        chain = ["float32", *(s.precision for s in slots), self.head_precision]
        total += sum(self.transition_bytes(a, b) for a, b in itertools.pairwise(chain))
        return math.ceil(total)

    def layer_table(self, arch: Architecture, space: SearchSpace, input_shape: Sequence[int]) -> list[dict]:
        """Per hidden layer: type, precision, bytes (for reports; none for cell networks)."""
        if space.family != "chain":
            return []
        rows = []
        for slot in self.slots(arch, space, input_shape):
            cost = self.layer_cost(slot)
            rows.append({"layer": slot.index, "type": LAYER_TYPES[slot.type_code].name, "runs_as": cost.precision,
                         "bytes": round(cost.bytes, 1)})
        return rows

    # -- the artifact -----------------------------------------------------------------------------
    def export(self, model, space: SearchSpace, arch: Architecture, path: str | Path,
               calibration_images: np.ndarray) -> Path:
        """Write the target's file for a trained ``model`` of ``arch``; returns its path.

        ``calibration_images`` (training images) set the ranges of the tensors that have no exact
        grid (float32 layers and the classifier on an int8 target).
        """
        from qnas.targets.artifact import deploy_graph

        self.require()
        if space.family != "chain":
            self.require_space(space)
            return self.write_keras(model, path)
        graph = deploy_graph(model, space, arch, self.precisions(arch, space), self.head_precision,
                             calibration_images)
        return self.write(graph, path, calibration_images)

    def write_keras(self, model, path: str | Path) -> Path:
        """Convert a trained Keras model as it is (cell networks: no folding) into the target's file."""
        raise UserInputError(f"target {self.name!r} cannot convert a Keras model as it is")

    @abstractmethod
    def write(self, graph, path: str | Path, calibration_images: np.ndarray) -> Path:
        """Convert a calibrated ``qnas.targets.fold.DeployGraph`` into the target's file at ``path``."""

    @abstractmethod
    def predict(self, path: str | Path, x: np.ndarray) -> np.ndarray:
        """Class probabilities of the file on ``x`` (float images, as the Keras model takes them)."""

    @abstractmethod
    def runner(self, path: str | Path, batch: int, threads: int = 1) -> Callable[[np.ndarray], object]:
        """A function that runs the file once on a batch of ``batch`` images (for latency)."""


def _flat_size(space: SearchSpace, input_shape: Sequence[int]) -> int:
    if space.kind == "dense":
        return int(np.prod(input_shape))
    return int(input_shape[2]) if len(input_shape) == 3 else 1


_REGISTRY: dict[str, Callable[[], Target]] = {}
_PREFERENCE: list[str] = []  # default_target's order: best real target first


def register(name: str, factory: Callable[[], Target], preference: int | None = None) -> None:
    """Add a target under ``name``; ``preference`` ranks it for ``default_target`` (None: never default)."""
    _REGISTRY[name] = factory
    if preference is not None:
        _PREFERENCE.insert(min(preference, len(_PREFERENCE)), name)


def target_names() -> list[str]:
    """Every registered target name."""
    return list(_REGISTRY)


def get_target(name: str | Target, require: bool = True) -> Target:
    """The target called ``name``; ``UserInputError`` for an unknown name or (``require``) a missing converter."""
    if isinstance(name, Target):
        target = name
    else:
        key = str(name).strip().lower().replace("-", "_")
        if key not in _REGISTRY:
            raise UserInputError(f"unknown deployment target {name!r}; known targets: {', '.join(_REGISTRY)}")
        target = _REGISTRY[key]()
    if require:
        target.require()
    return target


def default_target() -> Target:
    """The best real target whose converter is installed here (LCE, else full-integer TFLite)."""
    for name in _PREFERENCE:
        target = _REGISTRY[name]()
        if target.unavailable() is None:
            return target
    raise UserInputError("no deployment target can export here; install TensorFlow Lite or the 'lce' extra")


def describe_targets() -> str:
    """One line per target: name, whether it can export here, what it is."""
    lines = []
    for name, factory in _REGISTRY.items():
        target = factory()
        state = target.unavailable()
        lines.append(f"{name:12s} {'ok' if state is None else 'unavailable'}  {target.description}")
    return "\n".join(lines)
