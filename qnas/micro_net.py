"""The network around micro cells: stem, cells, classifier; built as a Keras model and counted in bits.

Layout, for images of any size and channel count:

1. stem: a float 3x3 convolution with ``filters`` outputs, then BatchNorm (pixels are never quantized),
   then 2x2 max pooling when the image's smaller side is at least ``stem_pool_from`` (24 by default: MNIST's
   28x28 and CIFAR's 32x32 are halved, which keeps a search within budget on two CPU cores);
2. cells: ``num_normal`` normal cells, then ``num_reductions`` times a reduction cell followed by
   ``num_normal`` normal cells. A reduction cell halves the resolution and doubles the filters (as ENAS);
3. ReLU, global average pooling, a float Dense classifier, softmax.

A cell's two inputs are first brought to the cell's shape without weights: 2x2 average pooling
(``SAME``, so odd sizes round up) while they are larger, and channel tiling while they have fewer
channels (a reduction cell's inputs are reduced this way, as ENAS reduces them before the cell). So
every byte of the model sits in the stem, the cells' convolutions and the classifier, and the float
information of the previous cells reaches the next stage unquantized.

Each operation of a node is, for input ``x``: a separable convolution ``act(x) -> depthwise k x k ->
pointwise 1x1 -> BatchNorm`` (float: ReLU; multi-bit types: their input quantizer inside the depthwise
layer), a full convolution ``quantized conv k x k -> BatchNorm`` (binary, ternary), a 3x3 pooling
(stride 1), or ``x`` itself. Layer names carry the cell, node and slot (``c1_n3_a_pw``), which the
supernet relies on to hand its weights over. A cell's output is the average of its loose ends followed by
BatchNorm (``h<cell>_out``): as ENAS's final 1x1 convolution and BatchNorm do, this keeps the scale of a cell's
output from growing with the identities and poolings it adds up, without a weight matrix. A cell whose output
no later cell reads is left out (``live_cells``).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import larq as lq
import tensorflow as tf

from qnas.micro_arch import MicroArchitecture, Node, is_conv, is_separable, op_kernel, op_type
from quantize.blocks import BN_EPSILON, BN_MOMENTUM
from quantize.types import LAYER_TYPES

SLOTS = ("a", "b")  # a node's first and second (input, op) pair
STEM_KERNEL = 3


@dataclass(frozen=True)
class MicroNet:
    """The fixed shape of the network around the cells (part of the space, so a string rebuilds it)."""

    filters: int = 16
    num_normal: int = 1
    num_reductions: int = 2
    stem_pool_from: int = 24  # 0: never pool after the stem

    def stem_pools(self, height: int, width: int) -> bool:
        """Whether the stem is followed by 2x2 max pooling for images of this size."""
        return 0 < self.stem_pool_from <= min(height, width)


@dataclass(frozen=True)
class InputPlan:
    """How one cell input is brought to the cell's shape: 2x2 poolings, then channel tiling."""

    pools: int
    tiles: int


@dataclass(frozen=True)
class CellPlan:
    """One cell of the network: kind, filters, output size and how its two inputs are adapted."""

    index: int
    kind: str
    filters: int
    size: tuple[int, int]
    inputs: tuple[InputPlan, InputPlan]


def image_shape(input_shape: Sequence[int]) -> tuple[int, int, int]:
    """(H, W, C) of the images, a missing channel axis counting as one channel."""
    shape = tuple(int(d) for d in input_shape)
    if len(shape) == 2:
        return (*shape, 1)
    if len(shape) != 3:
        raise ValueError(f"micro networks take images (H, W) or (H, W, C), got input shape {shape}")
    return shape  # type: ignore[return-value]


def plan_cells(net: MicroNet, input_shape: Sequence[int]) -> list[CellPlan]:
    """The cells in order, with each input's adaptation worked out from the shapes."""
    h, w, _ = image_shape(input_shape)
    if net.stem_pools(h, w):
        h, w = (h + 1) // 2, (w + 1) // 2
    kinds = ["normal"] * net.num_normal
    for _ in range(net.num_reductions):
        kinds += ["reduction"] + ["normal"] * net.num_normal
    shapes = [((h, w), net.filters)] * 2  # (size, channels) of the two most recent outputs: the stem's, twice
    plans = []
    filters, size = net.filters, (h, w)
    for index, kind in enumerate(kinds):
        if kind == "reduction":
            filters, size = 2 * filters, ((size[0] + 1) // 2, (size[1] + 1) // 2)
        inputs = tuple(_adapt(s, c, size, filters) for s, c in shapes)
        plans.append(CellPlan(index, kind, filters, size, inputs))  # type: ignore[arg-type]
        shapes = [shapes[1], (size, filters)]
    return plans


def live_cells(arch: MicroArchitecture, plans: list[CellPlan]) -> list[bool]:
    """Which cells reach the classifier: the last one, and any whose output a later live cell reads.

    A cell whose output no later cell reads (the next one never reads its input 1, the one after never its
    input 0) is left out of the network: it has no layers, no bits and no weights to train.
    """
    reads = [{i for node in arch.cell(p.kind) for i in (node.in1, node.in2) if i < 2} for p in plans]
    live = [False] * len(plans)
    for c in reversed(range(len(plans))):
        live[c] = (c == len(plans) - 1 or (live[c + 1] and 1 in reads[c + 1])
                   or (c + 2 < len(plans) and live[c + 2] and 0 in reads[c + 2]))
    return live


def _adapt(size: tuple[int, int], channels: int, target: tuple[int, int], filters: int) -> InputPlan:
    pools = 0
    while size[0] > target[0] or size[1] > target[1]:
        size = ((size[0] + 1) // 2, (size[1] + 1) // 2)
        pools += 1
    return InputPlan(pools, filters // channels)


def op_prefix(cell: int, node: int, slot: str) -> str:
    """Name prefix of the layers of one operation; ``node`` is its input index (2..B+1)."""
    return f"c{cell}_n{node}_{slot}"


def op_layers(code: int, filters: int, prefix: str) -> list[tf.keras.layers.Layer]:
    """The Keras layers of one operation, in order (none for identity)."""
    if code == 2:
        return [tf.keras.layers.AveragePooling2D(3, 1, padding="same", name=f"{prefix}_avgpool")]
    if code == 3:
        return [tf.keras.layers.MaxPool2D(3, 1, padding="same", name=f"{prefix}_maxpool")]
    if not is_conv(code):
        return []
    layer_type = LAYER_TYPES[op_type(code)]
    k = op_kernel(code)
    bn = tf.keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=f"{prefix}_bn")
    if not is_separable(code):
        return [lq.layers.QuantConv2D(filters, k, padding="same", input_quantizer=layer_type.input_quantizer(),
                                      kernel_quantizer=layer_type.kernel_quantizer(),
                                      kernel_constraint=layer_type.kernel_constraint(), use_bias=False,
                                      name=f"{prefix}_conv"), bn]
    act = [] if layer_type.quantized else [tf.keras.layers.ReLU(name=f"{prefix}_act")]
    return [*act,
            lq.layers.QuantDepthwiseConv2D(k, padding="same", input_quantizer=layer_type.input_quantizer(),
                                           depthwise_quantizer=layer_type.kernel_quantizer(),
                                           depthwise_constraint=layer_type.kernel_constraint(), use_bias=False,
                                           name=f"{prefix}_dw"),
            lq.layers.QuantConv2D(filters, 1, kernel_quantizer=layer_type.kernel_quantizer(),
                                  kernel_constraint=layer_type.kernel_constraint(), use_bias=False,
                                  name=f"{prefix}_pw"),
            bn]


def build_micro_model(net: MicroNet, arch: MicroArchitecture, input_shape: Sequence[int], num_classes: int,
                      name: str = "child") -> tf.keras.Model:
    """A fresh, untrained Keras model of ``arch`` (see the module docstring)."""
    shape = tuple(int(d) for d in input_shape)
    inputs = tf.keras.Input(shape=shape, name="image")
    x = tf.keras.layers.Reshape(image_shape(shape), name="add_channel")(inputs) if len(shape) == 2 else inputs
    x = lq.layers.QuantConv2D(net.filters, STEM_KERNEL, padding="same", use_bias=False, name="stem_conv")(x)
    x = tf.keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name="stem_bn")(x)
    if net.stem_pools(*image_shape(shape)[:2]):
        x = tf.keras.layers.MaxPool2D(2, padding="same", name="stem_pool")(x)
    prev = [x, x]
    plans = plan_cells(net, shape)
    for plan, live in zip(plans, live_cells(arch, plans)):
        if not live:
            prev = [prev[1], None]
            continue
        cell_inputs = [_adapt_layers(t, p, f"c{plan.index}_in{i}") for i, (t, p) in enumerate(zip(prev, plan.inputs))]
        out = _cell(arch.cell(plan.kind), arch.loose_ends(plan.kind), cell_inputs, plan)
        prev = [prev[1], out]
    x = tf.keras.layers.ReLU(name="out_act")(prev[1])
    x = tf.keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
    logits = tf.keras.layers.Dense(num_classes, name="logits")(x)
    return tf.keras.Model(inputs, tf.keras.layers.Softmax(name="probs")(logits), name=name)


def _adapt_layers(x: tf.Tensor | None, plan: InputPlan, prefix: str) -> tf.Tensor | None:
    if x is None:  # the output of a cell left out: this cell never reads it
        return None
    for k in range(plan.pools):
        x = tf.keras.layers.AveragePooling2D(2, padding="same", name=f"{prefix}_pool{k}")(x)
    if plan.tiles > 1:
        x = tf.keras.layers.Concatenate(name=f"{prefix}_tile")([x] * plan.tiles)
    return x


def _cell(nodes: tuple[Node, ...], loose: list[int], cell_inputs: list[tf.Tensor], plan: CellPlan) -> tf.Tensor:
    states = list(cell_inputs)
    for j, node in enumerate(nodes):
        index = j + 2
        outs = []
        for slot, (i, code) in zip(SLOTS, ((node.in1, node.op1), (node.in2, node.op2))):
            h = states[i]
            for layer in op_layers(code, plan.filters, op_prefix(plan.index, index, slot)):
                h = layer(h)
            outs.append(h)
        states.append(tf.keras.layers.Add(name=f"c{plan.index}_n{index}_add")(outs))
    ends = [states[i] for i in loose]
    out = ends[0] if len(ends) == 1 else tf.keras.layers.Average(name=f"c{plan.index}_mean")(ends)
    return tf.keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=f"h{plan.index}_out")(out)


def op_bits(code: int, filters: int) -> int:
    """Bits of one operation: weights at their type's bit-width, BatchNorm's two numbers a channel at 32."""
    if not is_conv(code):
        return 0
    k, bits = op_kernel(code), LAYER_TYPES[op_type(code)].bits
    weights = k * k * filters + filters * filters if is_separable(code) else k * k * filters * filters
    return weights * bits + 2 * filters * 32


def micro_bits(net: MicroNet, arch: MicroArchitecture, input_shape: Sequence[int], num_classes: int) -> int:
    """The theoretical size of the model ``build_micro_model`` makes, without building it (larq's count, tested)."""
    _, _, channels = image_shape(input_shape)
    bits = (STEM_KERNEL * STEM_KERNEL * channels * net.filters + 2 * net.filters) * 32
    plans = plan_cells(net, input_shape)
    for plan, live in zip(plans, live_cells(arch, plans)):
        ops = sum(op_bits(code, plan.filters) for node in arch.cell(plan.kind) for code in (node.op1, node.op2))
        bits += live * (ops + 2 * plan.filters * 32)  # the cell's operations and its output BatchNorm
    last = plans[-1].filters if plans else net.filters
    return bits + (last * num_classes + num_classes) * 32
