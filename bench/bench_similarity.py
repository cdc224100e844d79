"""Time one similarity loss (child-side perplexity calibration + KL) vs a naive per-row loop.

Run from the repo root: ``python bench/bench_similarity.py [--sizes 100 500 1000] [--features 256]``.
The naive baseline is the textbook implementation: a Python loop over rows, each
row doing its own binary search with numpy; it is measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from functools import partial
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from qnas.similarity import EPSILON, TSNELoss


def naive_joint(x: np.ndarray, perplexity: float = 30.0, tol: float = 1e-5, max_steps: int = 100) -> np.ndarray:
    """Per-row Python-loop calibration (same search rules as the library)."""
    n = x.shape[0]
    sq = np.sum(x * x, axis=1)
    dist = np.maximum(sq[:, None] + sq[None, :] - 2.0 * x @ x.T, 0.0)
    target = np.log(perplexity)
    cond = np.zeros((n, n))
    for i in range(n):
        d = np.delete(dist[i], i)
        beta, lo, hi = 1.0, -np.inf, np.inf
        for _ in range(max_steps):
            p = np.exp(-(d - d.min()) * beta)
            p /= p.sum()
            entropy = -np.sum(p * np.log(np.maximum(p, 1e-300)))
            if abs(entropy - target) <= tol:
                break
            if entropy > target:
                lo, beta = beta, beta * 2.0 if np.isinf(hi) else (beta + hi) / 2.0
            else:
                hi, beta = beta, beta / 2.0 if np.isinf(lo) else (beta + lo) / 2.0
        cond[i, np.arange(n) != i] = p
    joint = np.maximum((cond + cond.T) / np.sum(cond + cond.T), EPSILON)
    np.fill_diagonal(joint, 0.0)
    return joint


def naive_loss(p: np.ndarray, child: np.ndarray) -> float:
    """KL(P || Q) with Q from the naive calibration."""
    q = naive_joint(child)
    off = ~np.eye(p.shape[0], dtype=bool)
    return float(np.sum(p[off] * np.log(p[off] / q[off])))


def time_ms(fn, min_repeats: int, min_seconds: float) -> float:
    """Median wall time of fn() in ms over at least min_repeats calls / min_seconds."""
    fn()  # warm-up
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_repeats or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 500, 1000])
    parser.add_argument("--features", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=1.0, help="min time per measurement")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    print(f"features={args.features}, perplexity=30, tol=1e-5, median ms per loss (child side + KL)")
    print(f"{'n':>6} {'vectorised ms':>14} {'naive loop ms':>14} {'speedup':>8} {'|diff|':>9}")
    for n in args.sizes:
        parent = rng.normal(size=(n, args.features))
        child = np.tanh(parent @ rng.normal(size=(args.features, args.features)) / 16.0)
        child += 0.5 * rng.normal(size=child.shape)
        loss = TSNELoss(parent)  # parent side: computed once, not timed
        fast = time_ms(partial(loss, child), 5, args.seconds)
        slow = time_ms(partial(naive_loss, loss.P, child), 1, args.seconds)
        diff = abs(loss(child) - naive_loss(loss.P, child))
        print(f"{n:>6} {fast:>14.2f} {slow:>14.1f} {slow / fast:>7.1f}x {diff:>9.1e}")


if __name__ == "__main__":
    main()
