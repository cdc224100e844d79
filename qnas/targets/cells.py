"""Bytes of a micro-cell network (``qnas.spaces.micro``) in a target's file, from its architecture alone.

A cell network has no chain of layers to price one by one, so it is priced by what the file holds:

* every weight at the precision the target stores it (``Target.cell_precision`` of the op's type:
  ``binary`` is bit-packed, 32 weights to a 4-byte word along the input channels; ``int8`` one byte; else
  four bytes), counted exactly, and the classifier's float weights and biases;
* per operator of the file, its records (operator, output tensor, shape, name) and per-channel numbers
  (biases, multipliers): a constant per kind of operator plus one per output channel, in ``CELL_BYTES`` of
  the target.

The operators are those the converter writes for the Keras model as it is (``micro_graph``): it folds each
BatchNorm into the convolution before it (a float bias; LCE's binary convolutions a multiplier and a bias),
computes an activation or input quantizer once per tensor it reads (several operations reading the same
tensor share one ReLU, sign or DoReFa rounding; equal poolings of one tensor, and equal adaptations of a cell
input, are one), fuses a ReLU into the addition that feeds nothing else, and drops a cell input no node reads. A node with a
binary convolution whose kernel is larger than its input adds a constant (height x width x channels floats)
after its addition, which fixes LCE's zero padding there (``pad_fix``, ``qnas.targets.lce_padding``).
``cell_features`` counts them; the constants of each target were fitted by ``bench/fit_cell_bytes.py`` to
files its converter wrote (fit and worst error in BENCHMARKS.md, section ``cell-bytes``).
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from qnas.micro_arch import MicroArchitecture, is_conv, is_separable, op_kernel, op_type
from qnas.micro_net import STEM_KERNEL, image_shape, live_cells, plan_cells
from qnas.spaces.micro import MicroSpace
from qnas.targets.lce_padding import needs_padding_fix
from quantize.types import LAYER_TYPES

# feature names (operator kinds, their channels, per-file tables) that ``cell_features`` counts
FEATURES = ("file", "conv_op", "conv_channel", "depthwise_op", "zero_bias_channel", "binary_op", "binary_channel",
            "sign_op", "ternary_op", "dorefa_op", "relu_op", "pool_op", "add_op", "scale_op", "cell", "cell_channel",
            "tile", "scalar", "opcode")

# the TFLite operators each kind of ``micro_graph`` node becomes (the checks of the fit compare them with files)
TFLITE_OPS = {
    "stem": ("CONV_2D",), "conv": ("CONV_2D",), "depthwise": ("DEPTHWISE_CONV_2D",), "bconv": ("LceBconv2d",),
    "sign": ("LceQuantize",), "ternary": ("ADD", "LceQuantize", "LceDequantize"),
    "dorefa": ("MINIMUM", "RELU", "MUL", "ROUND"), "relu": ("RELU",), "avg": ("AVERAGE_POOL_2D",),
    "max": ("MAX_POOL_2D",), "adapt_pool": ("AVERAGE_POOL_2D",), "stem_pool": ("MAX_POOL_2D",), "add": ("ADD",),
    "scale": ("MUL",), "bn": ("MUL", "ADD"), "tile": ("CONCATENATION",), "pad_fix": ("ADD",),
    "head": ("MEAN", "FULLY_CONNECTED", "SOFTMAX"),
}
_DROPPED = -2  # the output of a cell left out
_FUSES_RELU = frozenset({"add", "bn", "conv", "depthwise", "stem"})  # ops whose output a ReLU fuses into


@dataclass(frozen=True)
class GraphOp:
    """One operation of the converted network: its kind, inputs (op indices; -1 the image) and output channels."""

    kind: str
    inputs: tuple[int, ...]
    channels: int = 0
    weight_bytes: int = 0
    detail: object = None  # what else tells two weightless ops of a kind apart (tiles, bits, tensors averaged)


class _Graph:
    """Operations in order; a weightless op equal to an earlier one (same kind, inputs and detail) is that one."""

    def __init__(self) -> None:
        self.ops: list[GraphOp] = []
        self._seen: dict[tuple, int] = {}

    def add(self, kind: str, inputs: Sequence[int], channels: int = 0, weight_bytes: int = 0,
            detail: object = None, unique: bool = False) -> int:
        """The index of the op (``unique`` or with weights: always a new one)."""
        op = GraphOp(kind, tuple(inputs), channels, weight_bytes, detail)
        key = (kind, op.inputs, detail)
        shared = not (unique or weight_bytes)
        if shared and key in self._seen:
            return self._seen[key]
        self.ops.append(op)
        if shared:
            self._seen[key] = len(self.ops) - 1
        return len(self.ops) - 1


def weight_bytes(precision: str, fan_in: int, filters: int, taps: int) -> int:
    """Bytes of one kernel of ``taps`` x ``fan_in`` x ``filters`` weights stored at ``precision``."""
    if precision == "binary":
        return filters * taps * math.ceil(fan_in / 32) * 4
    if precision == "int8":
        return fan_in * filters * taps
    return 4 * fan_in * filters * taps


def _operation(g: _Graph, x: int, code: int, f: int, precision: Callable[[int], str]) -> int:
    """The ops of one cell operation on tensor ``x`` (``qnas.micro_net.op_layers``); returns its output."""
    if code in (2, 3):
        return g.add("avg" if code == 2 else "max", [x])
    if not is_conv(code):
        return x  # identity
    k, type_code = op_kernel(code), op_type(code)
    if is_separable(code):  # act, depthwise k x k, pointwise 1x1 (BatchNorm folded into it)
        bits = LAYER_TYPES[type_code].bits
        act = g.add("relu", [x]) if type_code == 0 else g.add("dorefa", [x], detail=bits)
        dw = g.add("depthwise", [act], f, weight_bytes("float32", 1, f, k * k))
        return g.add("conv", [dw], f, weight_bytes("float32", f, f, 1))
    stored = precision(type_code)
    if stored == "binary":
        return g.add("bconv", [g.add("sign", [x])], f, weight_bytes("binary", f, f, k * k))
    return g.add("conv", [g.add("ternary" if type_code == 2 else "sign", [x])], f, weight_bytes(stored, f, f, k * k))


def _pad_fix(code: int, precision: Callable[[int], str]) -> bool:
    """Whether ``code`` is a bit-packed full convolution (zero-padded: fixed when its kernel exceeds its input)."""
    return is_conv(code) and not is_separable(code) and precision(op_type(code)) == "binary"


def micro_graph(space: MicroSpace, arch: MicroArchitecture, input_shape: Sequence[int], num_classes: int,
                precision: Callable[[int], str]) -> list[GraphOp]:
    """The operations of the file a converter writes for ``space.build(arch, ...)``, as the module docstring says.

    ``precision(type_code)`` is how the target stores a full convolution of that type (``binary``: bit-packed).
    """
    h, w, channels = image_shape(input_shape)
    net = space.net
    g = _Graph()
    x = g.add("stem", [-1], net.filters, weight_bytes("float32", channels, net.filters, STEM_KERNEL * STEM_KERNEL))
    if net.stem_pools(h, w):
        x = g.add("stem_pool", [x])
    prev = [x, x]
    plans = plan_cells(net, input_shape)
    for plan, live in zip(plans, live_cells(arch, plans)):
        if not live:
            prev = [prev[1], _DROPPED]  # no later cell reads it (``live_cells``)
            continue
        f = plan.filters
        states = []
        for t, adapt in zip(prev, plan.inputs):
            for _ in range(adapt.pools):
                t = g.add("adapt_pool", [t])
            states.append(g.add("tile", [t], f, detail=adapt.tiles) if adapt.tiles > 1 else t)
        nodes = arch.cell(plan.kind)
        for node in nodes:
            outs = [_operation(g, states[i], code, f, precision) for i, code in ((node.in1, node.op1),
                                                                              (node.in2, node.op2))]
            out = g.add("add", outs)
            if any(_pad_fix(code, precision) and needs_padding_fix((op_kernel(code),) * 2, plan.size)
                   for code in (node.op1, node.op2)):  # LCE's zero padding, fixed (qnas.targets.lce_padding)
                out = g.add("pad_fix", [out], f, weight_bytes("float32", plan.size[0] * plan.size[1], f, 1))
            states.append(out)
        ends = [states[i] for i in arch.loose_ends(plan.kind)]
        out = ends[0]
        for end in ends[1:]:
            out = g.add("add", [out, end])
        if len(ends) > 1:
            out = g.add("scale", [out], detail=len(ends))
        prev = [prev[1], g.add("bn", [out], f, unique=True)]
    last = plans[-1].filters if plans else net.filters
    g.add("head", [g.add("relu", [prev[1]])], last, 4 * (last * num_classes + num_classes))
    return _reachable(g.ops)


def _reachable(ops: list[GraphOp]) -> list[GraphOp]:
    """The ops the output (the last op) depends on, in order, without the ReLUs fused into the op that feeds them."""
    keep = [False] * len(ops)
    keep[-1] = True
    for i in reversed(range(len(ops))):
        if keep[i]:
            for j in ops[i].inputs:
                if j >= 0:
                    keep[j] = True
    consumers = Counter(j for i, op in enumerate(ops) if keep[i] for j in op.inputs)
    out = []
    for i, op in enumerate(ops):
        if not keep[i]:
            continue
        src = op.inputs[0] if op.inputs else -1
        if op.kind == "relu" and src >= 0 and ops[src].kind in _FUSES_RELU and consumers[src] == 1:
            continue  # fused into the op that feeds it
        out.append(op)
    return out


def tflite_op_counts(ops: Sequence[GraphOp]) -> Counter:
    """How many operators of each TFLite name the ops become (compared with ``read_tflite(...).ops``)."""
    return Counter(name for op in ops for name in TFLITE_OPS[op.kind])


def cell_features(space: MicroSpace, arch: MicroArchitecture, input_shape: Sequence[int], num_classes: int,
                  precision: Callable[[int], str]) -> tuple[int, dict[str, int]]:
    """(exact weight bytes, feature counts) of the file for the network ``space.build`` makes for ``arch``."""
    ops = micro_graph(space, arch, input_shape, num_classes, precision)
    counts = dict.fromkeys(FEATURES, 0)
    counts["file"] = 1
    kinds = {"stem": "conv", "conv": "conv", "bconv": "binary", "depthwise": "depthwise"}
    scalars, zero_bias = set(), set()
    for op in ops:
        if op.kind in kinds:
            counts[f"{kinds[op.kind]}_op"] += 1
            if op.kind == "depthwise":  # no bias: the converter adds zeros, one vector per width
                zero_bias.add(op.channels)
            else:
                counts[f"{kinds[op.kind]}_channel"] += op.channels
        elif op.kind in ("sign", "ternary", "dorefa", "relu", "add"):
            counts[f"{op.kind}_op"] += 1
        elif op.kind == "pad_fix":  # an addition of a constant (its weight bytes)
            counts["add_op"] += 1
        elif op.kind in ("avg", "max", "adapt_pool", "stem_pool"):
            counts["pool_op"] += 1
        elif op.kind == "scale":
            counts["scale_op"] += 1
        elif op.kind == "bn":
            counts["cell"] += 1
            counts["cell_channel"] += op.channels
        elif op.kind == "tile":  # always two copies: every stage doubles the filters
            counts["tile"] += 1
        if op.kind == "ternary":
            scalars.add("threshold")
        elif op.kind == "dorefa":
            scalars.update({"one", f"levels{op.detail}"})
        elif op.kind == "scale":
            scalars.add(f"mean{op.detail}")
    counts["zero_bias_channel"] = sum(zero_bias)
    counts["scalar"] = len(scalars)
    counts["opcode"] = len(set(tflite_op_counts(ops)))
    return sum(op.weight_bytes for op in ops), counts


def predict_cell_bytes(constants: dict[str, float], space: MicroSpace, arch: MicroArchitecture,
                       input_shape: Sequence[int], num_classes: int, precision: Callable[[int], str]) -> int:
    """The predicted file size: exact weight bytes plus ``constants`` times the feature counts."""
    weights, counts = cell_features(space, arch, input_shape, num_classes, precision)
    return math.ceil(weights + sum(constants.get(k, 0.0) * n for k, n in counts.items()))
