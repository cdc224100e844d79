"""Fit (and check) the byte constants of micro-cell networks (``qnas.targets.cells``) against files LCE writes.

    nice python bench/fit_cell_bytes.py --n 40 --seed 0 --write   # fit: prints CELL_BYTES, BENCHMARKS.md section
    nice python bench/fit_cell_bytes.py --n 20 --seed 1 --check   # check the hard-coded CELL_BYTES on other archs

Random micro architectures (random decisions of the space: binary only, or over a random subset of float32,
binary, ternary and int8 operations; 28x28x1 and 32x32x3 images, 10 classes) are built, called once, given
random BatchNorm statistics (so that no two folded constants are equal, as after training) and exported with
the target (``Target.export``: the Keras model converted as it is). Weights are counted exactly, so only the
constants per operator and per channel of ``qnas.targets.cells.FEATURES`` are fitted, by least squares on
``file bytes - weight bytes``, on three quarters of the files; the fit is reported on the held-out quarter and
on all. Each file's operators are also compared with ``qnas.targets.cells.micro_graph`` (the structure the
features count), and a few architectures are exported twice with other random weights (the size must not
depend on them).
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # before anything imports TensorFlow

import argparse
import math
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import tensorflow as tf
from common import log, randomise_batchnorm, write_section

from qnas.spaces import get_space
from qnas.targets import get_target
from qnas.targets.cells import FEATURES, cell_features, micro_graph, tflite_op_counts
from qnas.targets.flatbuffer import read_tflite

SHAPES = ((28, 28, 1), (32, 32, 3))
CLASSES = 10
TYPES = (0, 1, 2, 5)  # float32, binary, ternary, int8
TOLERANCE = (0.05, 2048)  # a file is within tolerance inside 5% or 2 KiB of its prediction


def random_arch(rng: np.random.Generator):
    """A micro architecture of random decisions: a third binary only (the search's default), a third over one or
    two of ``TYPES``, a third over all of them."""
    draw = rng.random()
    if draw < 1 / 3:
        pool = (1,)
    elif draw < 2 / 3:
        pool = rng.choice(TYPES, size=int(rng.integers(1, 3)), replace=False)
    else:
        pool = TYPES
    space = get_space("micro").with_options(types=tuple(int(t) for t in pool))
    return space, space.decode([int(rng.integers(n)) for n in space.decision_sizes()])


def export(target, space, arch, shape, path: Path, seed: int) -> Path:
    """The target's file for an untrained model of ``arch`` whose weights and BatchNorm come from ``seed``."""
    tf.keras.utils.set_random_seed(seed)
    model = space.build(arch, shape, CLASSES)
    model(np.zeros((1, *shape), np.float32))  # builds every layer (BatchNorm's statistics exist)
    randomise_batchnorm(model, np.random.default_rng(seed))
    return target.export(model, space, arch, path, np.zeros((1, *shape), np.float32))


def within(error: float, size: int) -> bool:
    return abs(error) <= max(TOLERANCE[0] * size, TOLERANCE[1])


def fit(rows: list[dict[str, int]], y: np.ndarray) -> dict[str, float]:
    """Least-squares constants (rounded to 0.1) of the features that vary in ``rows``."""
    keys = [k for k in FEATURES if any(r[k] for r in rows)]
    a = np.array([[r[k] for k in keys] for r in rows], float)
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    return {k: math.floor(c * 10 + 0.5) / 10 for k, c in zip(keys, coef)}


def r_squared(predicted: np.ndarray, real: np.ndarray) -> float:
    return 1.0 - float(np.sum((real - predicted) ** 2) / np.sum((real - np.mean(real)) ** 2))


def summary(name: str, predicted: np.ndarray, real: np.ndarray, weights: np.ndarray) -> str:
    """R^2 (of the file bytes, and of the bytes beside the weights) and the worst absolute and relative errors."""
    err = predicted - real
    worst, rel = int(np.argmax(np.abs(err))), int(np.argmax(np.abs(err) / real))
    inside = sum(within(e, s) for e, s in zip(err, real))
    return (f"{name}: {len(real)} files, R^2 {r_squared(predicted, real):.6f} (of the bytes beside the weights: "
            f"{r_squared(predicted - weights, real - weights):.4f}), worst error {err[worst]:+,.0f} B "
            f"({100 * err[worst] / real[worst]:+.2f}% of {real[worst]:,.0f}), worst relative "
            f"{100 * err[rel] / real[rel]:+.2f}% ({err[rel]:+,.0f} B of {real[rel]:,.0f}); {inside}/{len(real)} "
            f"within 5% or 2 KiB")


def op_difference(space, arch, shape, target, path: Path) -> dict[str, int]:
    """Operators ``micro_graph`` predicts minus those in the file, by name (empty: the same)."""
    graph = tflite_op_counts(micro_graph(space, arch, shape, CLASSES, target.cell_precision))
    real = Counter(read_tflite(path).ops)
    return {k: graph[k] - real[k] for k in sorted(set(graph) | set(real)) if graph[k] != real[k]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=40, help="architectures")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--target", default="lce")
    parser.add_argument("--twice", type=int, default=3, help="architectures exported again with other weights")
    parser.add_argument("--check", action="store_true", help="compare the hard-coded constants with the files instead")
    parser.add_argument("--write", action="store_true", help="write BENCHMARKS.md's cell-bytes section (a fit)")
    args = parser.parse_args(argv)
    if args.check and args.write:
        parser.error("--write records a fit; --check only prints")
    rng = np.random.default_rng(args.seed)
    target = get_target(args.target)
    start = time.time()
    rows, weights, sizes, labels, mismatches, drift = [], [], [], [], 0, []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.n):
            space, arch = random_arch(rng)
            shape = SHAPES[i % 2]
            path = export(target, space, arch, shape, Path(tmp) / f"m{i}.tflite", args.seed * 1000 + i)
            if i < args.twice:
                again = export(target, space, arch, shape, Path(tmp) / "again.tflite", args.seed * 1000 + i + 500)
                drift.append(again.stat().st_size - path.stat().st_size)
            diff = op_difference(space, arch, shape, target, path)
            mismatches += bool(diff)
            w, counts = cell_features(space, arch, shape, CLASSES, target.cell_precision)
            rows.append(counts)
            weights.append(w)
            sizes.append(path.stat().st_size)
            labels.append(f"{'x'.join(map(str, shape))}, types {','.join(map(str, space.types))}: `{arch.to_string()}`")
            log(f"{i:3d} {labels[-1]}  file {sizes[-1]:,} weights {w:,}" + (f"  ops (predicted - file) {diff}"
                                                                            if diff else ""))
    real, weights = np.array(sizes, float), np.array(weights, float)
    checks = (f"{args.n} exports in {time.time() - start:.0f} s; the first {args.twice} exported again with other "
              f"random weights differ in size by {drift} B; operators differ from `micro_graph` in {mismatches} files")
    log(checks)
    n_fit = 0 if args.check else (3 * args.n) // 4
    constants = dict(target.cell_bytes) if args.check else fit(rows[:n_fit], (real - weights)[:n_fit])
    predicted = np.ceil([w + sum(constants.get(k, 0.0) * n for k, n in r.items()) for w, r in zip(weights, rows)])
    for i, (p, s, lbl) in enumerate(zip(predicted, real, labels)):
        log(f"{i:3d} {'fit ' if i < n_fit else 'test'} predicted {p:10,.0f} file {s:10,.0f} error {p - s:+7,.0f} "
            f"({100 * (p - s) / s:+.2f}%)  {lbl}")
    lines = [summary(f"fitted on the first {n_fit}", predicted[:n_fit], real[:n_fit], weights[:n_fit]),
             summary("held out", predicted[n_fit:], real[n_fit:], weights[n_fit:])] if n_fit else []
    lines.append(summary("all", predicted, real, weights))
    for line in lines:
        log(line)
    constants_line = "CELL_BYTES = {" + ", ".join(f'"{k}": {v}' for k, v in constants.items()) + "}"
    log(constants_line)
    if args.write:
        write_section("cell-bytes", markdown(args, constants_line, [*lines, checks], predicted, real, labels, n_fit))
    return 0


def markdown(args, constants_line: str, lines: list[str], predicted: np.ndarray, real: np.ndarray, labels: list[str],
             n_fit: int) -> str:
    table = [f"| {lbl.split(':')[0]} | {lbl.split(': ')[1]} | {p:,.0f} | {s:,.0f} | {p - s:+,.0f} "
             f"({100 * (p - s) / s:+.2f}%) |" for p, s, lbl in zip(predicted[n_fit:], real[n_fit:], labels[n_fit:])]
    return "\n".join([
        "## Bytes of micro-cell networks in LCE files",
        "",
        (f"`nice python bench/fit_cell_bytes.py --n {args.n} --seed {args.seed} --write` (untrained models with "
         "random BatchNorm statistics; the constants went into `qnas/targets/lce.py`, `CELL_BYTES`)"),
        "",
        *(f"* {line}" for line in lines),
        "",
        "```",
        constants_line,
        "```",
        "",
        "The held-out architectures:",
        "",
        "| image, types | architecture | predicted bytes | file bytes | error |",
        "|---|---|---|---|---|",
        *table,
    ])


if __name__ == "__main__":
    sys.exit(main())
