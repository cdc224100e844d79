"""Warm starts: make a smaller (or quantized) network from a trained parent instead of from random weights.

Two entry points:

* ``select_units`` / ``contribution_prune_widths``: which units of a layer to keep (by L1 norm of
  the incoming weights as EComp does, by activation contribution, by mean |activation|, or at
  random). EComp's initial population uses them.
* ``init_from_parent(child, parent, x_sample)``: copy a parent built by ``qnas.models.build_model``
  into a child of the same depth, in place, whatever the child's widths and layer types.

How ``init_from_parent`` maps each hidden block ``i`` (parent units ``keep[i]`` chosen as above):

* kernel: the parent's kernel restricted to the kept inputs (``keep[i-1]``) and outputs (``keep[i]``),
  passed through the child's kernel constraint (larq's ``WeightClip`` clips latent weights to
  [-1, 1]); quantized layers receive the float weights as their latent weights.
* same float layer on both sides (same bias/BatchNorm layout): bias or BatchNorm copied as is, so a
  float child with the parent's widths computes exactly the parent's function.
* float child with a bias, parent with BatchNorm: the BatchNorm is folded into kernel and bias (exact).
* child with BatchNorm otherwise (a quantized child; or a float parent with a bias, as in ``mlp``):
  the BatchNorm's moving mean and variance are re-estimated from the child's own pre-BN outputs on
  ``x_sample`` (earlier blocks already warm-started), and ``gamma``/``beta`` are set to the standard
  deviation and mean of the parent's block output for that unit on ``x_sample``. The child's block
  output then has the parent's per-unit mean and spread on the sample, which is what the next
  block's ReLU or quantizer sees.
* a child wider than the parent keeps all parent units; its extra units keep their fresh weights,
  and their outgoing weights are zero when the next layer is float (so the parent's function is kept).
* classifier: the parent's, restricted to the last block's kept units.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
import tensorflow as tf

from qnas.contribution import activation_scores, contribution_scores
from qnas.errors import UserInputError
from qnas.keras_graph import resolve_linear, width
from qnas.prune import lowest, resolve_utility
from qnas.utilities import get_utilities

METHODS = ("auto", "contribution", "activation", "l1", "random")


# ----------------------------------------------------------------------------- choosing units

def l1_scores(model: tf.keras.Model, layer_name: str) -> np.ndarray:
    """L1 norm of each unit's incoming weights (EComp's pruning criterion)."""
    kernel = resolve_linear(model, layer_name).get_weights()[0]
    return np.abs(kernel).reshape(-1, kernel.shape[-1]).sum(axis=0).astype(np.float64)


def _scores(model: tf.keras.Model, names: Sequence[str], method: str, utilities: Mapping[str, np.ndarray] | None,
            x_sample: np.ndarray | None, y_sample: np.ndarray | None, seed: int) -> dict[str, np.ndarray]:
    """Per-unit scores of several layers by one method (computed once for all of them)."""
    if method not in METHODS:
        raise UserInputError(f"unknown unit selection method {method!r}; expected one of {', '.join(METHODS)}")
    given = {**(get_utilities(model) or {}), **(utilities or {})} if method in ("auto", "contribution") else {}
    missing = [n for n in names if n not in given]
    out = {n: np.asarray(given[n], dtype=np.float64) for n in names if n in given}
    if not missing:
        return out
    if method == "auto":  # no tracked utilities: L1 warm-starts best on MNIST (BENCHMARKS.md)
        return {**out, **{n: l1_scores(model, n) for n in missing}}
    if method in ("contribution", "activation") and x_sample is None:
        raise UserInputError(f"method {method!r} needs x_sample (or utilities) to score the units of {missing}")
    if method == "contribution":
        return {**out, **contribution_scores(model, x_sample, y_sample, layers=missing)}
    if method == "activation":
        return {**out, **activation_scores(model, x_sample, layers=missing)}
    if method == "l1":
        return {**out, **{n: l1_scores(model, n) for n in missing}}
    rng = np.random.default_rng(seed)
    return {**out, **{n: rng.random(width(model.get_layer(n))) for n in missing}}


def _keep_top(scores: np.ndarray, keep: int, layer: str) -> np.ndarray:
    total = len(scores)
    if not 1 <= int(keep) <= total:
        raise UserInputError(f"can keep 1..{total} units of {layer!r}, not {keep}")
    return lowest(scores, total - int(keep))


def select_units(model: tf.keras.Model, layer_name: str, keep: int, method: str = "l1", utility=None,
                 x_sample: np.ndarray | None = None, y_sample: np.ndarray | None = None,
                 seed: int = 0) -> np.ndarray:
    """Sorted indices of the ``keep`` units of ``layer_name`` to keep.

    ``method``: ``"l1"`` (largest incoming-weight L1 norm), ``"contribution"`` (highest activation
    contribution: tracked utilities of the model, else computed on ``x_sample``/``y_sample``),
    ``"activation"`` (largest mean |activation| on ``x_sample``), ``"random"`` (seeded), or
    ``"auto"`` (tracked contribution when the model has utilities, else L1). ``utility``, an array
    or a function ``(model, layer_name) -> array``, overrides the method's scores.
    """
    layer = resolve_linear(model, layer_name)
    if utility is not None:
        return _keep_top(resolve_utility(model, layer.name, utility), keep, layer.name)
    scores = _scores(model, [layer.name], method, None, x_sample, y_sample, seed)[layer.name]
    return _keep_top(scores, keep, layer.name)


def contribution_prune_widths(model: tf.keras.Model, widths: Sequence[int], method: str = "contribution",
                              utilities: Mapping[str, np.ndarray] | None = None,
                              x_sample: np.ndarray | None = None, y_sample: np.ndarray | None = None,
                              seed: int = 0) -> list[np.ndarray]:
    """Kept unit indices for hidden layers ``h0_linear, h1_linear, ...`` of a ``build_model`` model.

    One sorted index array per layer, of length ``widths[i]``; scores are computed once for all layers.
    """
    names = hidden_linear_names(model)
    if len(widths) != len(names):
        raise UserInputError(f"got {len(widths)} widths for a model with {len(names)} hidden layers")
    scores = _scores(model, names, method, utilities, x_sample, y_sample, seed)
    return [_keep_top(scores[n], w, n) for n, w in zip(names, widths)]


def hidden_linear_names(model: tf.keras.Model) -> list[str]:
    """``h0_linear, h1_linear, ...`` of a model built by ``qnas.models.build_model`` (checked)."""
    found = sorted(int(m.group(1)) for lay in model.layers if (m := re.fullmatch(r"h(\d+)_linear", lay.name)))
    if not found or found != list(range(len(found))):
        raise UserInputError(
            f"model {model.name!r} does not have hidden blocks h0_linear, h1_linear, ...; warm starts need models "
            "built by qnas.models.build_model"
        )
    return [f"h{i}_linear" for i in found]


def _has(model: tf.keras.Model, name: str) -> bool:
    return any(lay.name == name for lay in model.layers)


def _is_float(layer: tf.keras.layers.Layer) -> bool:
    return getattr(layer, "kernel_quantizer", None) is None and getattr(layer, "input_quantizer", None) is None


def _block_output(model: tf.keras.Model, i: int) -> tf.keras.layers.Layer:
    return model.get_layer(f"h{i}_bn" if _has(model, f"h{i}_bn") else f"h{i}_linear")


def _channel_moments(model: tf.keras.Model, layer: tf.keras.layers.Layer, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and variance of a layer's output on ``x`` (inference mode; all positions)."""
    out = tf.keras.Model(model.inputs, layer.output).predict(x, batch_size=500, verbose=0)
    flat = out.reshape(-1, out.shape[-1]).astype(np.float64)
    return flat.mean(axis=0), flat.var(axis=0)


def _check_pair(child: tf.keras.Model, parent: tf.keras.Model) -> tuple[list[str], list[str]]:
    c_names, p_names = hidden_linear_names(child), hidden_linear_names(parent)
    if len(c_names) != len(p_names):
        raise UserInputError(
            f"the parent has {len(p_names)} hidden layers but the child has {len(c_names)}; a warm start from the "
            "parent needs the same depth (use an architecture with as many layers as the parent, or random init)"
        )
    p0, c0 = parent.get_layer("h0_linear"), child.get_layer("h0_linear")
    if isinstance(p0, tf.keras.layers.Dense) != isinstance(c0, tf.keras.layers.Dense):
        raise UserInputError("parent and child must be both dense (mlp) or both convolutional (conv)")
    if tuple(parent.input_shape[1:]) != tuple(child.input_shape[1:]):
        raise UserInputError(f"parent input shape {parent.input_shape[1:]} differs from the child's {child.input_shape[1:]}")
    if parent.get_layer("logits").units != child.get_layer("logits").units:
        raise UserInputError("parent and child must have the same number of classes")
    return c_names, p_names


def _pad_keep(keep: np.ndarray, child_width: int) -> np.ndarray:
    """Kept parent units, then -1 for each child unit the parent does not have."""
    return np.concatenate([keep, -np.ones(child_width - len(keep), dtype=np.int64)])


def _copy_kernel(c_layer, p_kernel: np.ndarray, rows: np.ndarray | None, cols: np.ndarray,
                 zero_new_rows: bool) -> np.ndarray:
    """The child's kernel with the parent's weights at the mapped (input, output) units."""
    kernel = c_layer.get_weights()[0].copy()
    src = p_kernel if rows is None else np.take(p_kernel, np.where(rows >= 0, rows, 0), axis=-2)
    src = np.take(src, np.where(cols >= 0, cols, 0), axis=-1)
    have_rows = np.ones(kernel.shape[-2], bool) if rows is None else rows >= 0
    have_cols = cols >= 0
    mask = np.zeros(kernel.shape[-2:], bool)
    mask[np.ix_(have_rows, have_cols)] = True
    kernel = np.where(mask, src, kernel)
    if zero_new_rows and rows is not None:
        kernel[..., ~have_rows, :] = 0.0
    if c_layer.kernel_constraint is not None:
        kernel = c_layer.kernel_constraint(tf.constant(kernel)).numpy()
    return kernel.astype(np.float32)


def init_from_parent(child: tf.keras.Model, parent, x_sample: np.ndarray,
                     utilities: Mapping[str, np.ndarray] | None = None, method: str = "auto",
                     seed: int = 0) -> list[np.ndarray]:
    """Copy a trained parent into ``child`` in place (see the module docstring for the mapping).

    ``parent`` is a Keras model or an ``qnas.parent.Parent``. Units to keep are chosen per hidden
    layer by ``method`` (see ``select_units``; default ``"auto"``: the activation contribution tracked
    while the parent trained, or ``utilities``, when available, else the L1 norm of incoming weights,
    which gave the best warm starts on MNIST of the criteria computable after training). ``x_sample``
    (a few hundred training images) re-estimates BatchNorm statistics, and scores units for the
    ``"contribution"`` and ``"activation"`` methods.
    Returns the kept parent unit indices per hidden layer.
    """
    parent_model = getattr(parent, "model", parent)
    c_names, p_names = _check_pair(child, parent_model)
    x_sample = np.asarray(x_sample, dtype=np.float32)
    if x_sample.ndim < 2 or len(x_sample) < 2:
        raise UserInputError("x_sample must hold at least two input examples")
    c_widths = [width(child.get_layer(n)) for n in c_names]
    p_widths = [width(parent_model.get_layer(n)) for n in p_names]
    kept = contribution_prune_widths(parent_model, [min(c, p) for c, p in zip(c_widths, p_widths)], method,
                                     utilities, x_sample, None, seed)
    maps = [_pad_keep(k, c) for k, c in zip(kept, c_widths)]
    for i, (c_name, p_name) in enumerate(zip(c_names, p_names)):
        _init_block(child, parent_model, i, maps[i - 1] if i else None, maps[i], x_sample)
    logits_p, logits_c = parent_model.get_layer("logits"), child.get_layer("logits")
    p_kernel, p_bias = logits_p.get_weights()
    kernel = _copy_kernel(logits_c, p_kernel, maps[-1], np.arange(p_kernel.shape[-1]), zero_new_rows=True)
    logits_c.set_weights([kernel, p_bias])
    return kept


def _init_block(child: tf.keras.Model, parent: tf.keras.Model, i: int, rows: np.ndarray | None, cols: np.ndarray,
                x_sample: np.ndarray) -> None:
    """Warm-start hidden block ``i`` of the child (kernel, then bias or BatchNorm)."""
    c_lin, p_lin = child.get_layer(f"h{i}_linear"), parent.get_layer(f"h{i}_linear")
    c_bn, p_bn = _has(child, f"h{i}_bn"), _has(parent, f"h{i}_bn")
    p_weights = p_lin.get_weights()
    p_kernel = p_weights[0]
    fold_bn = p_bn and not c_bn
    if fold_bn:
        gamma, beta, mean, var = _bn_params(parent.get_layer(f"h{i}_bn"))
        scale = gamma / np.sqrt(var + parent.get_layer(f"h{i}_bn").epsilon)
        p_kernel = p_kernel * scale
        p_bias = beta - mean * scale + (p_weights[1] * scale if p_lin.use_bias else 0.0)
    else:
        p_bias = p_weights[1] if p_lin.use_bias else None
    kernel = _copy_kernel(c_lin, p_kernel, rows, cols, zero_new_rows=_is_float(c_lin))
    c_weights = c_lin.get_weights()
    c_weights[0] = kernel
    have = cols >= 0
    if c_lin.use_bias:
        bias = c_weights[1].copy()
        if p_bias is not None:
            bias[have] = p_bias[cols[have]]
        c_weights[1] = bias
    c_lin.set_weights(c_weights)
    if not c_bn:
        return
    bn = child.get_layer(f"h{i}_bn")
    if p_bn and _is_float(c_lin) and _is_float(p_lin):
        params = _bn_params(parent.get_layer(f"h{i}_bn"))
        _set_bn(bn, [np.where(have, p[np.where(have, cols, 0)], d) for p, d in zip(params, _bn_params(bn))])
        return
    # Moment matching: the child's own statistics for the moving averages, the parent's for gamma/beta.
    c_mean, c_var = _channel_moments(child, c_lin, x_sample)
    p_mean, p_var = _channel_moments(parent, _block_output(parent, i), x_sample)
    gamma, beta, _, _ = _bn_params(bn)
    idx = np.where(have, cols, 0)
    gamma = np.where(have, np.sqrt(p_var[idx]), gamma)
    beta = np.where(have, p_mean[idx], beta)
    _set_bn(bn, [gamma, beta, c_mean, c_var])


def _bn_params(bn: tf.keras.layers.BatchNormalization) -> list[np.ndarray]:
    """gamma, beta, moving mean, moving variance (ones/zeros for a BatchNorm without scale/center)."""
    weights = {w.name.split("/")[-1].split(":")[0]: w.numpy() for w in bn.weights}
    n = int(bn.moving_mean.shape[0])
    return [weights.get("gamma", np.ones(n)), weights.get("beta", np.zeros(n)),
            weights["moving_mean"], weights["moving_variance"]]


def _set_bn(bn: tf.keras.layers.BatchNormalization, params: Sequence[np.ndarray]) -> None:
    gamma, beta, mean, var = (np.asarray(p, dtype=np.float32) for p in params)
    values = []
    if bn.scale:
        values.append(gamma)
    if bn.center:
        values.append(beta)
    bn.set_weights([*values, mean, var])
