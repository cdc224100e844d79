"""Fit (and check) the byte constants of the real deployment targets against files their converters write.

    nice python bench/fit_target_bytes.py --n 40 --seed 0            # fit: prints the BYTES dicts
    nice python bench/fit_target_bytes.py --n 30 --seed 1 --check    # check the hard-coded ones

Random mlp and conv architectures of every type (untrained weights, randomised BatchNorm so no two
constants are equal) are exported with each target. Kernels are counted exactly (int8: one byte a
weight; bit-packed: 32 weights a 4-byte word; float: four bytes), so only the per-layer and
per-channel constants are fitted, by least squares on ``file bytes - kernel bytes``.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # before anything imports TensorFlow

import argparse
import math
import sys
import tempfile
from pathlib import Path

import numpy as np
from common import log, randomise_batchnorm

from qnas.arch import Architecture, Layer
from qnas.models import build_model
from qnas.spaces import get_space
from qnas.targets import get_target

INPUT_SHAPE, CLASSES = (28, 28, 1), 10
ODD_WIDTHS = (4, 8, 12, 16, 24, 32, 40, 48, 64, 96, 100, 128, 160, 256)


def random_arch(rng: np.random.Generator, kind: str) -> Architecture:
    depth = int(rng.integers(1, 5))
    widths = [int(rng.choice([w for w in ODD_WIDTHS if w <= (128 if kind == "conv" else 256)])) for _ in range(depth)]
    # Half of the architectures draw from one or two types only, so files without int8 (or without
    # binary, or without float) layers are as common in the fit as mixed ones.
    pool = rng.choice(6, size=int(rng.integers(1, 3)), replace=False) if rng.random() < 0.5 else np.arange(6)
    return Architecture(tuple(Layer(w, int(rng.choice(pool))) for w in widths))


def features(target, arch: Architecture, space) -> tuple[dict[str, float], float]:
    """What each byte constant multiplies in ``predict_bytes`` (it is linear in them), and the rest."""
    constants = sys.modules[type(target).__module__].BYTES
    saved = dict(constants)
    try:
        constants.update(dict.fromkeys(saved, 0.0))
        exact = float(target.predict_bytes(arch, space, INPUT_SHAPE, CLASSES))
        counts = {}
        for key in saved:
            constants[key] = 1.0
            counts[key] = target.predict_bytes(arch, space, INPUT_SHAPE, CLASSES) - exact
            constants[key] = 0.0
    finally:
        constants.update(saved)
    return {k: v for k, v in counts.items() if v}, exact


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=40, help="architectures per target")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--targets", default="lce,tflite_int8")
    parser.add_argument("--verbose", action="store_true", help="print every file's residual")
    parser.add_argument("--check", action="store_true", help="compare predict_bytes with the files instead of fitting")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    images = rng.random((64, *INPUT_SHAPE)).astype(np.float32)
    for name in args.targets.split(","):
        target = get_target(name)
        rows, sizes, exacts, errors = [], [], [], []
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(args.n):
                space = get_space("conv" if i % 2 else "mlp")
                arch = random_arch(rng, space.kind)
                model = build_model(space, arch, INPUT_SHAPE, CLASSES)
                randomise_batchnorm(model, rng)
                path = target.export(model, space, arch, Path(tmp) / f"m{i}.tflite", images)
                size = path.stat().st_size
                f, exact = features(target, arch, space)
                rows.append(f)
                sizes.append(size)
                exacts.append(exact)
                if args.check:
                    predicted = target.predict_bytes(arch, space, INPUT_SHAPE, CLASSES)
                    errors.append((predicted - size, size, space.name, arch.to_string()))
                    log(f"{name} {space.name} {arch.to_string():28s} file {size:8d} predicted {predicted:8d} "
                        f"error {predicted - size:+6d} ({100 * (predicted - size) / size:+.2f}%)")
        if args.check:
            worst = max(errors, key=lambda e: abs(e[0]))
            worst_rel = max(errors, key=lambda e: abs(e[0]) / e[1])
            log(f"{name}: worst error {worst[0]:+d} bytes ({worst[2]} {worst[3]}), worst relative "
                f"{100 * worst_rel[0] / worst_rel[1]:+.2f}% over {len(errors)} architectures")
            continue
        keys = sorted({k for r in rows for k in r})
        a = np.array([[r.get(k, 0.0) for k in keys] for r in rows])
        y = np.array(sizes, float) - np.array(exacts)
        coef, *_ = np.linalg.lstsq(a, y, rcond=None)
        residual = a @ coef - y
        log(f"{name}: fitted on {len(rows)} files, worst residual {np.max(np.abs(residual)):.0f} bytes")
        if args.verbose:
            for r, e, size in zip(rows, residual, sizes):
                log(f"  residual {e:+8.0f} of {size:8d}  {r}")
        log("BYTES = {" + ", ".join(f'"{k}": {math.floor(c * 10 + 0.5) / 10}' for k, c in zip(keys, coef)) + "}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
