"""EComp's variation operators: selection, block-swap recombination, and mutations of weights, widths, types.

Faithful to the reference: softmax selection (draw with replacement, pair in order), block-swap
recombination and element-wise weight scaling by ``U(0.9, 1.1)``. Ours: tournament selection, and two
genes the reference lacks, the width of a hidden layer (shrink by L1 norm, grow by splitting units)
and its layer type (precision). A type change keeps each unit's output mean and spread on a
calibration batch (moment matching), so the network downstream still sees what it was trained on.
"""
from __future__ import annotations

from collections.abc import Sequence

import larq as lq
import numpy as np

from ecomp_tf.genome import Individual, forward, quantizers
from ecomp_tf.population import keep_units, lowest_l1, split_units
from quantize.types import LAYER_TYPES

# types whose input quantizer clips to [0, 1]: the previous layer must deliver values in that range
CLIPPED_INPUT_TYPES = frozenset(c for c, t in LAYER_TYPES.items() if isinstance(t.input_quantizer(), lq.quantizers.DoReFa))


# --- selection -----------------------------------------------------------------------------------

def softmax(values: np.ndarray) -> np.ndarray:
    """Softmax, shifted by the maximum so large fitnesses do not overflow."""
    e = np.exp(np.asarray(values, np.float64) - np.max(values))
    return e / e.sum()


def softmax_selection(fitness: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """The reference's selection: ``n`` draws with replacement, probabilities ``softmax(fitness)``."""
    idx = rng.choice(len(fitness), size=n, replace=True, p=softmax(fitness))
    rng.shuffle(idx)
    return idx


def tournament_selection(fitness: np.ndarray, n: int, rng: np.random.Generator, size: int = 3) -> np.ndarray:
    """``n`` winners of tournaments among ``size`` distinct random individuals: a pressure that does not
    fade when all fitnesses are close, unlike softmax of values that differ by a few hundredths."""
    fitness = np.asarray(fitness)
    size = min(size, len(fitness))
    contenders = np.stack([rng.choice(len(fitness), size=size, replace=False) for _ in range(n)])
    return contenders[np.arange(n), np.argmax(fitness[contenders], axis=1)]


# --- recombination -------------------------------------------------------------------------------

def layer_index(name: str, num_hidden: int) -> int:
    """Kernel index of a recombination layer name: ``h{i}_linear`` -> i, ``logits`` -> the classifier."""
    if name == "logits":
        return num_hidden
    if name.startswith("h") and name.endswith("_linear") and name[1:-7].isdigit() and int(name[1:-7]) < num_hidden:
        return int(name[1:-7])
    raise ValueError(f"unknown recombination layer {name!r}; expected 'h0_linear'..'h{num_hidden - 1}_linear' "
                     "or 'logits'")


def block_swap(a: Individual, b: Individual, layers: Sequence[int],
               rng: np.random.Generator) -> tuple[Individual, Individual]:
    """Two children: each keeps one parent's shapes and takes the other's leading ``k x k`` weight block.

    For each layer a cut ``k`` is drawn in ``[1, min(all four kernel dimensions)]``; the first child
    is ``b`` with ``a``'s block ``W[:k, :k]`` (first k inputs of the first k units) and ``a``'s first
    k biases, the second the mirror image. Widths are only passed on, never changed.
    """
    child_ab, child_ba = b.copy(), a.copy()
    for li in layers:
        ka, kb = a.kernels[li], b.kernels[li]
        k = int(rng.integers(1, min(*ka.shape, *kb.shape) + 1))
        child_ab.kernels[li][:k, :k] = ka[:k, :k]
        child_ba.kernels[li][:k, :k] = kb[:k, :k]
        hidden = li < a.num_hidden
        same_kind = not hidden or ((a.scales[li] is None) == (b.scales[li] is None))
        if same_kind:
            child_ab.biases[li][:k] = a.biases[li][:k]
            child_ba.biases[li][:k] = b.biases[li][:k]
            if hidden and a.scales[li] is not None:
                child_ab.scales[li][:k] = a.scales[li][:k]
                child_ba.scales[li][:k] = b.scales[li][:k]
        if hidden and a.origins and b.origins:
            child_ab.origins[li][:k] = a.origins[li][:k]
            child_ba.origins[li][:k] = b.origins[li][:k]
    return child_ab, child_ba


# --- mutation ------------------------------------------------------------------------------------

def scale_weights(ind: Individual, layers: Sequence[int], rng: np.random.Generator,
                  low: float = 0.9, high: float = 1.1) -> Individual:
    """The reference's mutation: every kernel weight of ``layers`` times its own ``U(low, high)``."""
    out = ind.copy()
    for li in layers:
        out.kernels[li] = out.kernels[li] * rng.uniform(low, high, out.kernels[li].shape).astype(np.float32)
    return out


def match_moments(ind: Individual, layer: int, target: np.ndarray, calib_x: np.ndarray) -> Individual:
    """Rescale a hidden layer's units so their outputs on ``calib_x`` have ``target``'s mean and spread.

    A quantized layer changes its folded BatchNorm; a float layer its kernel columns and bias
    (exact for float, where a column scale commutes with the matmul).
    """
    out = ind.copy()
    z = forward(out, calib_x).z[layer].astype(np.float64)
    target = np.asarray(target, np.float64)
    z_std, t_std = z.std(axis=0), target.std(axis=0)
    gain = np.where(z_std > 1e-8, t_std / np.maximum(z_std, 1e-8), 0.0)
    shift = target.mean(axis=0) - gain * z.mean(axis=0)
    if out.scales[layer] is None:
        out.kernels[layer] = (out.kernels[layer] * gain[None, :]).astype(np.float32)
    else:
        out.scales[layer] = gain.astype(np.float32)
    out.biases[layer] = shift.astype(np.float32)
    return out


def _rescale_output(ind: Individual, layer: int, factor: float) -> None:
    """Multiply a hidden layer's outputs by ``factor`` > 0, in place."""
    if ind.scales[layer] is None:
        ind.kernels[layer] = ind.kernels[layer] * np.float32(factor)
    else:
        ind.scales[layer] = ind.scales[layer] * np.float32(factor)
    ind.biases[layer] = ind.biases[layer] * np.float32(factor)


def retype(ind: Individual, layer: int, code: int, calib_x: np.ndarray) -> Individual:
    """Give a hidden layer another type, keeping its outputs' statistics (see ``match_moments``).

    Types whose input quantizer clips to [0, 1] (DoReFa) first get the previous layer's outputs scaled
    so that nearly all of them (99th percentile) fall inside that range.
    """
    before = forward(ind, calib_x)
    out = ind.copy()
    if code in CLIPPED_INPUT_TYPES and layer > 0:
        top = float(np.percentile(np.maximum(before.y[layer - 1], 0.0), 99))
        if top > 1e-6:
            _rescale_output(out, layer - 1, 1.0 / top)
    types = list(out.arch.type_codes)
    types[layer] = int(code)
    out.arch = out.with_arch(types=types)
    quantized = quantizers(code)[1] is not None
    if quantized and out.scales[layer] is None:
        out.scales[layer] = np.ones(out.widths[layer], np.float32)
    elif not quantized:
        out.scales[layer] = None
    return match_moments(out, layer, before.y[layer], calib_x)


def resize(ind: Individual, layer: int, grow: bool, step: int, rng: np.random.Generator,
           calib_x: np.ndarray | None = None) -> Individual:
    """Shrink a hidden layer by its ``step`` lowest-L1 units, or grow it by splitting ``step`` random units.

    With ``calib_x`` and a quantized next hidden layer, that layer is moment-matched to its outputs
    before the change (a float next layer needs no help: a split keeps its function exactly and the
    removed units are the weakest).
    """
    rematch = (calib_x is not None and layer + 1 < ind.num_hidden
               and quantizers(ind.arch.type_codes[layer + 1])[1] is not None)
    before = forward(ind, calib_x) if rematch else None
    width = ind.widths[layer]
    if grow:
        out = split_units(ind, layer, rng.choice(width, size=step, replace=False), rng)
    else:
        out = keep_units(ind, layer, lowest_l1(ind, layer, step))
    if before is not None:
        out = match_moments(out, layer + 1, before.y[layer + 1], calib_x)
    return out


def mutate_width(ind: Individual, layer: int, rng: np.random.Generator, step_fraction: float = 0.1,
                 min_width: int = 4, max_width: int = 4096, calib_x: np.ndarray | None = None) -> Individual:
    """Change one layer's width by about ``step_fraction`` of it, up or down with equal odds (in range)."""
    width = ind.widths[layer]
    step = max(1, round(step_fraction * width))
    grow = bool(rng.random() < 0.5)
    if grow and width + step > max_width:
        grow = False
    if not grow and width - step < min_width:
        grow = width + step <= max_width
        if not grow:
            return ind
    return resize(ind, layer, grow, step, rng, calib_x)


def mutate_type(ind: Individual, layer: int, rng: np.random.Generator, types: Sequence[int],
                calib_x: np.ndarray) -> Individual:
    """Switch one layer to another allowed type, drawn uniformly."""
    choices = [t for t in types if t != ind.arch.type_codes[layer]]
    if not choices:
        return ind
    return retype(ind, layer, int(rng.choice(choices)), calib_x)
