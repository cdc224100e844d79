"""Scale: the compiled supernet step against the eager one, and the default search on full-size data.

    python bench/bench_scale.py steps [--steps 30]          # compiled vs eager step throughput
    python bench/bench_scale.py full_size [--epochs 20]     # default search: 54,000 training images vs the subset

``steps`` times both step kinds in one process on the same minibatches, for random children and for
the largest child, and reports ratios (compiled over eager). ``full_size`` builds a 60,000-image
training set offline from ../shared/data/mnist-10k.npz (the 8,000 training images, each repeated 7.5
times on average with a random shift of up to 2 pixels: for timing only, never for accuracy) in a
temporary folder, runs the default search on it and on the subset in the same process order, and
reports wall minutes and their ratio. Writes the ``scale`` sections of BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from common import DEFAULT_DATA, log, write_section

import search_arc_mnist
from enas.strategies.random import RandomStrategy
from enas.supernet import Supernet
from qnas.arch import parse_arch
from qnas.data import load_dataset
from qnas.spaces import get_space


def step_rate(net: Supernet, batches, children, repeats: int) -> float:
    """Training steps per second (after two warm-up steps, which also trace the compiled step)."""
    for i in range(2):
        net.train_step(*batches[i], children[i % len(children)])
    start = time.perf_counter()
    for i in range(repeats):
        net.train_step(*batches[i % len(batches)], children[i % len(children)])
    return repeats / (time.perf_counter() - start)


def bench_steps(args: argparse.Namespace) -> None:
    data = load_dataset(data_path=args.data, seed=0)
    space = get_space("conv")
    batches = [(data.x_train[i * 100:(i + 1) * 100], data.y_train[i * 100:(i + 1) * 100]) for i in range(20)]
    randoms = [space.decode(d) for d in RandomStrategy(space.decisions(), seed=0).ask(args.steps + 2)]
    largest = [parse_arch(" ".join(f"{max(space.widths)} 1" for _ in range(space.num_layers)))]
    rows = []
    for label, children in (("random child per step", randoms), ("largest child (128 binary x4)", largest)):
        eager = step_rate(Supernet(space, data.input_shape, data.num_classes, step="eager"), batches, children,
                          args.steps)
        compiled = step_rate(Supernet(space, data.input_shape, data.num_classes, step="compiled"), batches, children,
                             args.steps)
        log(f"{label}: eager {eager:.1f} steps/s, compiled {compiled:.1f} steps/s")
        rows.append(f"| {label} | {eager:.1f} | {compiled:.1f} | {compiled / eager:.2f} |")
    write_section("scale-steps", "\n".join([
        "## Compiled supernet step against eager slicing (conv space, batch 100, CPU)",
        "",
        f"`python bench/bench_scale.py steps --steps {args.steps}`: both step kinds in one process, same minibatches.",
        "",
        "| child | eager steps/s | compiled steps/s | compiled / eager |",
        "|---|---|---|---|",
        *rows,
        "",
        "The compiled step is faster even on these CPUs, so `--supernet_step auto` (the default) compiles on every",
        "device. No GPU was lent to the session that measured this, so the GPU row is still to be measured.",
    ]))


def full_size_npz(source: str, folder: Path, n_train: int = 60000) -> Path:
    """A timing-only stand-in for full MNIST: the subset's training images repeated with random 2-pixel shifts."""
    raw = np.load(source)
    rng = np.random.default_rng(0)
    pick = rng.integers(0, len(raw["x_train"]), n_train)
    x = raw["x_train"][pick]
    shifts = rng.integers(-2, 3, (n_train, 2))
    x = np.stack([np.roll(img, tuple(s), axis=(0, 1)) for img, s in zip(x, shifts)])
    path = folder / "mnist-60k-timing.npz"
    np.savez(path, x_train=x, y_train=raw["y_train"][pick], x_test=raw["x_test"], y_test=raw["y_test"])
    return path


def timed_search(data: Path, out: Path, epochs: int) -> tuple[float, float]:
    """Wall minutes and CPU minutes (all threads of this process) of one default search, parent included."""
    wall, cpu = time.perf_counter(), time.process_time()
    argv = ["--data", str(data), "--output_dir", str(out / "run"), "--cache_dir", str(out / "cache"),
            "--epochs", str(epochs)]
    if search_arc_mnist.main(argv) != 0:
        raise SystemExit(f"search failed: {argv}")
    return (time.perf_counter() - wall) / 60, (time.process_time() - cpu) / 60


def bench_full_size(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        big = full_size_npz(args.data, tmp)
        (subset_min, subset_cpu), load_a = timed_search(Path(args.data), tmp / "subset", args.epochs), os.getloadavg()[1]
        (full_min, full_cpu), load_b = timed_search(big, tmp / "full", args.epochs), os.getloadavg()[1]
    log(f"subset {subset_min:.2f} min ({subset_cpu:.2f} CPU min), 54,000 images {full_min:.2f} min "
        f"({full_cpu:.2f} CPU min); CPU-time ratio {full_cpu / subset_cpu:.2f}")
    write_section("scale-full-size", "\n".join([
        "## Default search cost on full-size data",
        "",
        f"`python bench/bench_scale.py full_size --epochs {args.epochs}`: the default search (parent training",
        "included) on the 7,200-image training split of the MNIST subset and on a 54,000-image training split",
        "(60,000 images built offline from the subset for timing; 10% held out), one after the other in one process.",
        "CPU time (all threads of the process) is the cost; wall time is shown too, but other jobs shared the 2 cores",
        f"(5-minute load average {load_a:.1f} after the first run, {load_b:.1f} after the second).",
        "",
        "| training images | CPU minutes | wall minutes | CPU-time ratio |",
        "|---|---|---|---|",
        f"| 7,200 (mnist-10k) | {subset_cpu:.2f} | {subset_min:.2f} | 1.00 |",
        f"| 54,000 | {full_cpu:.2f} | {full_min:.2f} | {full_cpu / subset_cpu:.2f} |",
    ]))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["steps", "full_size"])
    p.add_argument("--data", default=DEFAULT_DATA)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--epochs", type=int, default=20)
    args = p.parse_args()
    {"steps": bench_steps, "full_size": bench_full_size}[args.what](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
