"""Predict an architecture's latency from a per-layer table, measured once per machine and target, and cached.

An entry is one hidden layer in context: kind, type, the precision it runs at, input shape, width,
pooling. It is measured as the median single-image latency (one thread) of a file holding just that
layer and the classifier head, minus that of a file holding the head alone on the layer's output;
the head has its own entries. A prediction is the sum of an architecture's layer entries and its
head's. Files are built from synthetic weights on each type's grid (``synthetic_layer``), so no
training is involved; entries missing from the table are measured when first needed and written to
``<cache_dir>/latency/<target>-<machine>.json``.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from qnas.arch import Architecture
from qnas.models import CONV_KERNEL
from qnas.space import SearchSpace
from qnas.targets.base import LayerSlot, Target, get_target
from qnas.targets.fold import DeployGraph, FoldedModel, HiddenLayer
from qnas.targets.measure import median_ms
from quantize.types import LAYER_TYPES

TABLE_VERSION = 1


def machine_id() -> str:
    """A short name for this CPU and software stack: entries measured elsewhere do not apply here."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import tensorflow as tf

    try:
        from importlib.metadata import version

        lce = version("larq-compute-engine")
    except Exception:  # noqa: BLE001  (not installed, or broken metadata)
        lce = "none"
    text = f"{cpu}|{os.cpu_count()}|tf{tf.__version__}|lce{lce}|v{TABLE_VERSION}"
    return f"{platform.machine()}-{hashlib.sha1(text.encode()).hexdigest()[:10]}"


def _grid_kernel(type_code: int, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Random weights exactly on a type's grid, as the folded kernel of a trained layer would be."""
    name = LAYER_TYPES[type_code].name
    if name == "float32":
        return rng.normal(0.0, 0.1, shape)
    if name == "binary":
        return rng.choice([-1.0, 1.0], shape)
    if name == "ternary":
        return rng.choice([-1.0, 0.0, 1.0], shape)
    levels = 2 ** LAYER_TYPES[type_code].bits - 1
    return (2.0 * rng.integers(0, levels + 1, shape) - levels) / levels


def _input_params(type_code: int) -> dict[str, float]:
    name = LAYER_TYPES[type_code].name
    if name == "ternary":
        return {"threshold": 0.05}
    if name.startswith("int"):
        return {"levels": float(2 ** LAYER_TYPES[type_code].bits - 1)}
    return {}


def synthetic_model(kind: str, input_shape: tuple[int, ...], layer: LayerSlot | None, head_precision: str,
                    num_classes: int, seed: int = 0) -> FoldedModel:
    """A folded network of zero or one hidden layer with random weights on its type's grid."""
    rng = np.random.default_rng(seed)
    layers = []
    features = input_shape[-1] if kind == "conv" else int(np.prod(input_shape))
    if layer is not None:
        shape = (CONV_KERNEL, CONV_KERNEL, layer.fan_in, layer.width) if kind == "conv" else (layer.fan_in, layer.width)
        layers.append(HiddenLayer(
            index=0, kind=kind, type_code=layer.type_code, precision=layer.precision,
            kernel=_grid_kernel(layer.type_code, shape, rng), scale=rng.uniform(0.5, 1.5, layer.width),
            shift=rng.normal(0.0, 0.3, layer.width), pool=layer.pool, input_params=_input_params(layer.type_code)))
        features = layer.width
    return FoldedModel(input_shape=tuple(input_shape), kind=kind, layers=layers,
                       head_kernel=rng.normal(0.0, 0.3, (features, num_classes)),
                       head_bias=rng.normal(0.0, 0.1, num_classes), head_precision=head_precision)


@dataclass
class LatencyTable:
    """Measured per-layer latencies (ms, single image, one thread) of one target on this machine."""

    target: Target
    cache_dir: Path = Path("cache")
    repeats: int = 50
    warmup: int = 10
    entries: dict[str, float] = field(default_factory=dict)
    measured: int = 0  # entries measured by this object (the rest came from the cache)

    def __post_init__(self) -> None:
        self.target = get_target(self.target)
        self.cache_dir = Path(self.cache_dir)
        if self.path.exists():
            data = json.loads(self.path.read_text())
            if data.get("version") == TABLE_VERSION:
                self.entries.update(data.get("entries", {}))

    @property
    def path(self) -> Path:
        return self.cache_dir / "latency" / f"{self.target.name}-{machine_id()}.json"

    def save(self) -> None:
        """Write the table atomically (entries are only ever added)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps({"version": TABLE_VERSION, "target": self.target.name, "machine": machine_id(),
                                   "entries": dict(sorted(self.entries.items()))}, indent=1))
        os.replace(tmp, self.path)

    # -- keys ---------------------------------------------------------------------------------------
    @staticmethod
    def layer_key(slot: LayerSlot) -> str:
        shape = f"{slot.input_hw[0]}x{slot.input_hw[1]}x{slot.fan_in}" if slot.kind == "conv" else f"{slot.fan_in}"
        return f"{slot.kind}|{LAYER_TYPES[slot.type_code].name}|{slot.precision}|in{shape}|w{slot.width}|pool{int(slot.pool)}"

    @staticmethod
    def head_key(kind: str, shape: tuple[int, ...], num_classes: int) -> str:
        return f"head|{kind}|in{'x'.join(str(d) for d in shape)}|c{num_classes}"

    # -- measuring ------------------------------------------------------------------------------------
    def _time(self, folded: FoldedModel) -> float:
        rng = np.random.default_rng(0)
        images = rng.random((64, *folded.input_shape)).astype(np.float32)
        graph = DeployGraph(folded)
        graph.calibrate(images)
        with tempfile.TemporaryDirectory(prefix="qnas-latency-") as tmp:
            path = self.target.write(graph, Path(tmp) / "m.tflite", images)
            return median_ms(self.target.runner(path, 1), images[:1], self.warmup, self.repeats)

    def head_ms(self, kind: str, shape: tuple[int, ...], num_classes: int) -> float:
        key = self.head_key(kind, shape, num_classes)
        if key not in self.entries:
            self.entries[key] = round(self._time(synthetic_model(kind, shape, None, self.target.head_precision,
                                                                 num_classes)), 5)
            self.measured += 1
            self.save()
        return self.entries[key]

    def layer_ms(self, slot: LayerSlot, num_classes: int) -> float:
        key = self.layer_key(slot)
        out_shape = _output_shape(slot)
        if key not in self.entries:
            in_shape = (*slot.input_hw, slot.fan_in) if slot.kind == "conv" else (slot.fan_in,)
            with_layer = self._time(synthetic_model(slot.kind, in_shape, slot, self.target.head_precision,
                                                    num_classes))
            self.entries[key] = round(max(0.0, with_layer - self.head_ms(slot.kind, out_shape, num_classes)), 5)
            self.measured += 1
            self.save()
        return self.entries[key]

    # -- predicting -------------------------------------------------------------------------------------
    def predict(self, arch: Architecture, space: SearchSpace, input_shape: Sequence[int], num_classes: int) -> float:
        """Predicted single-image latency (ms) of ``arch``'s file on this machine."""
        slots = self.target.slots(arch, space, input_shape)
        total = sum(self.layer_ms(s, num_classes) for s in slots)
        last = _output_shape(slots[-1]) if slots else tuple(int(d) for d in input_shape)
        return total + self.head_ms(space.kind, last, num_classes)

    def breakdown(self, arch: Architecture, space: SearchSpace, input_shape: Sequence[int],
                  num_classes: int) -> list[tuple[str, float]]:
        """(entry key, ms) for each part of the prediction."""
        slots = self.target.slots(arch, space, input_shape)
        rows = [(self.layer_key(s), self.layer_ms(s, num_classes)) for s in slots]
        last = _output_shape(slots[-1]) if slots else tuple(int(d) for d in input_shape)
        rows.append((self.head_key(space.kind, last, num_classes), self.head_ms(space.kind, last, num_classes)))
        return rows


def _output_shape(slot: LayerSlot) -> tuple[int, ...]:
    if slot.kind != "conv":
        return (slot.width,)
    h, w = slot.input_hw
    return (h // 2, w // 2, slot.width) if slot.pool else (h, w, slot.width)


def predict_latency(arch: Architecture, space: SearchSpace, input_shape: Sequence[int], num_classes: int,
                    target: Target | str, cache_dir: str | Path = "cache") -> float:
    """Predicted single-image latency (ms) of ``arch`` on ``target`` here, measuring missing table entries."""
    return LatencyTable(get_target(target), Path(cache_dir)).predict(arch, space, input_shape, num_classes)
