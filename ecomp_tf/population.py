"""EComp's initial population: copies of the parent pruned by the L1 norm of each neuron's incoming weights.

The reference removes ``int(r * width)`` neurons from every hidden layer for ``POP_SIZE`` evenly spaced
rates ``r`` in ``[0.1, 0.8)`` (0.1, 0.107, ..., 0.793 for 100 individuals). Each layer's norms are
measured on the unpruned parent, and the next layer's inputs follow the neurons that stay. The same
unit surgery (keep some units, or split some in two) serves the width mutation of the improved mode.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ecomp_tf.genome import Individual


def l1_norms(ind: Individual, layer: int) -> np.ndarray:
    """L1 norm of each hidden unit's incoming weights (the latent float kernel)."""
    return np.abs(ind.kernels[layer]).sum(axis=0)


def keep_units(ind: Individual, layer: int, keep: Sequence[int]) -> Individual:
    """A copy of ``ind`` with only the ``keep`` units (in their order) of a hidden layer."""
    keep = np.asarray(keep, dtype=np.int64)
    out = ind.copy()
    out.kernels[layer] = out.kernels[layer][:, keep]
    out.biases[layer] = out.biases[layer][keep]
    if out.scales[layer] is not None:
        out.scales[layer] = out.scales[layer][keep]
    out.kernels[layer + 1] = out.kernels[layer + 1][keep, :]
    if out.origins:
        out.origins[layer] = out.origins[layer][keep]
    widths = list(out.widths)
    widths[layer] = len(keep)
    out.arch = out.with_arch(widths=widths)
    return out


def lowest_l1(ind: Individual, layer: int, n_remove: int) -> np.ndarray:
    """Indices of the units that survive removing the ``n_remove`` lowest-norm ones, in original order."""
    norms = l1_norms(ind, layer)
    drop = np.argsort(norms, kind="stable")[:n_remove]
    return np.setdiff1d(np.arange(len(norms)), drop)


def split_units(ind: Individual, layer: int, units: Sequence[int], rng: np.random.Generator,
                noise: float = 0.1) -> Individual:
    """Grow a hidden layer by splitting units in two (Net2Net style), the copies appended at the end.

    Each copy gets its source's incoming weights scaled by ``U(1 - noise, 1 + noise)`` (to break the
    symmetry), and the source and copy share the outgoing weights half and half, so a float network
    computes (nearly) the same function after the split.
    """
    units = np.asarray(units, dtype=np.int64)
    out = ind.copy()
    k_in = out.kernels[layer]
    copies = k_in[:, units] * rng.uniform(1 - noise, 1 + noise, (k_in.shape[0], len(units))).astype(np.float32)
    out.kernels[layer] = np.concatenate([k_in, copies], axis=1)
    out.biases[layer] = np.concatenate([out.biases[layer], out.biases[layer][units]])
    if out.scales[layer] is not None:
        out.scales[layer] = np.concatenate([out.scales[layer], out.scales[layer][units]])
    k_out = out.kernels[layer + 1]
    k_out[units, :] *= 0.5
    out.kernels[layer + 1] = np.concatenate([k_out, k_out[units, :]], axis=0)
    if out.origins:
        out.origins[layer] = np.concatenate([out.origins[layer], out.origins[layer][units]])
    widths = list(out.widths)
    widths[layer] += len(units)
    out.arch = out.with_arch(widths=widths)
    return out


def prune_l1(ind: Individual, rate: float) -> Individual:
    """Remove ``int(rate * width)`` lowest-L1 units from every hidden layer, norms taken before any removal."""
    keeps = [lowest_l1(ind, i, int(np.floor(rate * w + 1e-9))) for i, w in enumerate(ind.widths)]
    out = ind
    for i, keep in enumerate(keeps):
        out = keep_units(out, i, keep)
    return out


def prune_rates(size: int, low: float = 0.1, high: float = 0.8) -> np.ndarray:
    """The reference's rates: ``size`` evenly spaced values from ``low`` (included) towards ``high``."""
    return low + (high - low) * np.arange(size) / size


def initial_population(parent: Individual, size: int, low: float = 0.1, high: float = 0.8) -> list[Individual]:
    """``size`` copies of the parent, pruned at the reference's evenly spaced rates."""
    return [prune_l1(parent, float(r)) for r in prune_rates(size, low, high)]
