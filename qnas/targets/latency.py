"""Predict an architecture's latency from a per-layer table, measured once per machine and target, and cached.

An entry is one hidden layer in context: kind, type, the precision it runs at, input shape, width,
pooling. It is measured as the median single-image latency (one thread) of a file holding just that
layer and the classifier head, minus that of a file holding the head alone on the layer's output,
timed in alternating rounds so that both see the same load from other processes; the head has its
own entries. Entries are scaled by a reference file timed just before them (``speed``), so a table
filled over minutes of changing load stays consistent. A prediction is the sum of an architecture's layer entries and its
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

TABLE_VERSION = 3
ROUNDS = 5  # alternating timing rounds of a layer entry


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
    reference_ms: float | None = None  # the reference file's latency the entries are scaled to
    _reference: tuple | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.target = get_target(self.target)
        self.cache_dir = Path(self.cache_dir)
        if self.path.exists():
            data = json.loads(self.path.read_text())
            if data.get("version") == TABLE_VERSION:
                self.entries.update(data.get("entries", {}))
                self.reference_ms = data.get("reference_ms")

    def speed(self) -> float:
        """The reference file's median latency now (ms): how fast this CPU runs while other jobs load it.

        The reference is a fixed small network (an int8 3x3 convolution of 16 filters on the 28x28 image,
        and the head). Entries are measured with it and stored scaled to the table's first reference
        time, so entries measured minutes apart, under different loads, add up consistently.
        """
        if self._reference is None:
            slot = LayerSlot(0, "conv", 5, 16, 1, True, True, (28, 28),
                             precision=self.target.runs_as(5, True, "conv"))
            with tempfile.TemporaryDirectory(prefix="qnas-latency-") as tmp:
                self._reference = self._runner(synthetic_model("conv", (28, 28, 1), slot, self.target.head_precision,
                                                               10), Path(tmp), "reference")
        run, image = self._reference
        return median_ms(run, image, self.warmup, self.repeats)

    def _scale(self) -> float:
        """Factor from latencies measured now to the table's reference load (1.0 for the first entry)."""
        now = self.speed()
        if self.reference_ms is None:
            self.reference_ms = now
        return self.reference_ms / now

    @property
    def path(self) -> Path:
        return self.cache_dir / "latency" / f"{self.target.name}-{machine_id()}.json"

    def save(self) -> None:
        """Write the table atomically (entries are only ever added)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps({"version": TABLE_VERSION, "target": self.target.name, "machine": machine_id(),
                                   "reference_ms": self.reference_ms,
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
    def _runner(self, folded: FoldedModel, folder: Path, name: str):
        """The target's file for ``folded`` (calibrated on random images) and one image to time it on."""
        rng = np.random.default_rng(0)
        images = rng.random((64, *folded.input_shape)).astype(np.float32)
        graph = DeployGraph(folded)
        graph.calibrate(images)
        path = self.target.write(graph, folder / f"{name}.tflite", images)
        return self.target.runner(path, 1), images[:1]

    def _time(self, folded: FoldedModel) -> float:
        with tempfile.TemporaryDirectory(prefix="qnas-latency-") as tmp:
            run, image = self._runner(folded, Path(tmp), "m")
            return median_ms(run, image, self.warmup, self.repeats)

    def _time_difference(self, with_layer: FoldedModel, head_only: FoldedModel) -> tuple[float, float]:
        """Median of (layer + head) minus head alone, timed in alternating rounds so both see the same load."""
        with tempfile.TemporaryDirectory(prefix="qnas-latency-") as tmp:
            run_a, image_a = self._runner(with_layer, Path(tmp), "a")
            run_b, image_b = self._runner(head_only, Path(tmp), "b")
            median_ms(run_a, image_a, self.warmup, 1)
            median_ms(run_b, image_b, self.warmup, 1)
            per_round = max(5, self.repeats // ROUNDS)
            differences, heads = [], []
            for _ in range(ROUNDS):
                with_layer = median_ms(run_a, image_a, 0, per_round)
                heads.append(median_ms(run_b, image_b, 0, per_round))
                differences.append(with_layer - heads[-1])
            return float(np.median(differences)), float(np.median(heads))

    def head_ms(self, kind: str, shape: tuple[int, ...], num_classes: int) -> float:
        key = self.head_key(kind, shape, num_classes)
        if key not in self.entries:
            scale = self._scale()
            self.entries[key] = round(scale * self._time(synthetic_model(kind, shape, None, self.target.head_precision,
                                                                         num_classes)), 5)
            self.measured += 1
            self.save()
        return self.entries[key]

    def layer_ms(self, slot: LayerSlot, num_classes: int) -> float:
        key = self.layer_key(slot)
        out_shape = _output_shape(slot)
        if key not in self.entries:
            in_shape = (*slot.input_hw, slot.fan_in) if slot.kind == "conv" else (slot.fan_in,)
            head = self.target.head_precision
            scale = self._scale()
            difference, head_alone = self._time_difference(
                synthetic_model(slot.kind, in_shape, slot, head, num_classes),
                synthetic_model(slot.kind, out_shape, None, head, num_classes))
            self.entries[key] = round(max(0.0, scale * difference), 5)
            self.measured += 1
            head_key = self.head_key(slot.kind, out_shape, num_classes)
            if head_key not in self.entries:
                self.entries[head_key] = round(scale * head_alone, 5)
                self.measured += 1
            self.save()
        return self.entries[key]

    # -- predicting -------------------------------------------------------------------------------------
    def predict(self, arch: Architecture, space: SearchSpace, input_shape: Sequence[int], num_classes: int,
                now: bool = False) -> float:
        """Predicted single-image latency (ms) of ``arch``'s file on this machine, at the table's reference
        load; ``now=True`` scales it to the load measured now (``speed``)."""
        slots = self.target.slots(arch, space, input_shape)
        total = sum(self.layer_ms(s, num_classes) for s in slots)
        last = _output_shape(slots[-1]) if slots else tuple(int(d) for d in input_shape)
        total += self.head_ms(space.kind, last, num_classes)
        return total / self._scale() if now else total

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
