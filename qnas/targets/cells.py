"""Bytes of a micro-cell network (``qnas.spaces.micro``) in a target's file, from its architecture alone.

A cell network has no chain of layers to price one by one, so it is priced by what the file holds:

* every weight at the precision the target stores it (``Target.runs_as`` of the op's type: ``binary`` is
  bit-packed, 32 weights to a 4-byte word along the input channels; ``int8`` one byte; else four bytes),
  counted exactly;
* per operator, the records and per-channel numbers the format adds (multipliers, biases, shapes, names):
  a constant per kind of operator plus one per output channel, in ``CELL_BYTES`` of the target.

``cell_features`` counts those operators; the constants of each target were fitted by
``bench/fit_cell_bytes.py`` to files its converter wrote (fit and worst error in BENCHMARKS.md, section
``cell-bytes``).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from qnas.micro_arch import MicroArchitecture, is_conv, is_separable, op_kernel, op_type
from qnas.micro_net import STEM_KERNEL, image_shape, live_cells, plan_cells
from qnas.spaces.micro import MicroSpace

# feature names (operator kinds and their channels) that ``cell_features`` counts
FEATURES = ("file", "binary_op", "binary_channel", "float_op", "float_channel", "pool_op", "add_op",
            "cell", "cell_channel", "adapt_pool", "tile")


def weight_bytes(precision: str, fan_in: int, filters: int, taps: int) -> int:
    """Bytes of one kernel of ``taps`` x ``fan_in`` x ``filters`` weights stored at ``precision``."""
    if precision == "binary":
        return filters * taps * math.ceil(fan_in / 32) * 4
    if precision == "int8":
        return fan_in * filters * taps
    return 4 * fan_in * filters * taps


def cell_features(space: MicroSpace, arch: MicroArchitecture, input_shape: Sequence[int], num_classes: int,
                  runs_as: Callable[[int], str]) -> tuple[int, dict[str, int]]:
    """(exact weight bytes, operator counts) of the network ``space.build`` makes for ``arch``.

    ``runs_as(type_code)`` is the precision the target runs a convolution of that type at (never first: the
    stem is the float layer that reads the pixels).
    """
    _, _, channels = image_shape(input_shape)
    net = space.net
    counts = dict.fromkeys(FEATURES, 0)
    counts["file"] = 1
    weights = 4 * (STEM_KERNEL * STEM_KERNEL * channels * net.filters)  # the float stem, BatchNorm folded in
    counts["float_op"] += 1
    counts["float_channel"] += net.filters
    plans = plan_cells(net, input_shape)
    for plan, live in zip(plans, live_cells(arch, plans)):
        if not live:
            continue
        f = plan.filters
        counts["cell"] += 1
        counts["cell_channel"] += f
        for adapt in plan.inputs:
            counts["adapt_pool"] += adapt.pools
            counts["tile"] += adapt.tiles > 1
        for node in arch.cell(plan.kind):
            counts["add_op"] += 1
            for code in (node.op1, node.op2):
                if not is_conv(code):
                    counts["pool_op"] += code in (2, 3)
                    continue
                k = op_kernel(code)
                precision = runs_as(op_type(code))
                if is_separable(code):  # depthwise k x k, then pointwise 1x1; the target keeps both float
                    weights += weight_bytes("float32", 1, f, k * k) + weight_bytes("float32", f, f, 1)
                    counts["float_op"] += 2
                    counts["float_channel"] += 2 * f
                elif precision == "binary":
                    weights += weight_bytes("binary", f, f, k * k)
                    counts["binary_op"] += 1
                    counts["binary_channel"] += f
                else:
                    weights += weight_bytes(precision, f, f, k * k)
                    counts["float_op"] += 1
                    counts["float_channel"] += f
    last = plans[-1].filters if plans else net.filters
    weights += 4 * (last * num_classes + num_classes)
    return weights, counts


def predict_cell_bytes(constants: dict[str, float], space: MicroSpace, arch: MicroArchitecture,
                       input_shape: Sequence[int], num_classes: int, runs_as: Callable[[int], str]) -> int:
    """The predicted file size: exact weight bytes plus ``constants`` times the operator counts."""
    weights, counts = cell_features(space, arch, input_shape, num_classes, runs_as)
    return math.ceil(weights + sum(constants.get(k, 0.0) * n for k, n in counts.items()))
