"""Shift augmentation of digits when retraining: train_arc with ``--no-augment`` against ``--augment``, paired by seed.

    python bench/bench_augment.py [--seeds 0,1,2] [--micro_seeds 0] [--max_epochs 30]

Each architecture is one the default searches printed (conv on lce and on tflite_int8, micro) or the float
baseline, retrained with its printed ``train_arc.py`` command (``--distill`` included) once without and once
with augmentation, per seed. On digits ``--augment`` shifts each image by up to 3 pixels (no flips). Reports
test accuracy per run and the mean paired difference with a 95% interval (t distribution). Writes the
``augment`` section of BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from common import DEFAULT_DATA, ROOT, interval, log, write_section
from picks import train_once

MICRO_WINNER = "1 4 0 10 0 3 0 4 0 3 1 3 0 3 0 3 1 2 0 10 0 10 1 10 2 3 1 2 1 2 3 3 3 3 1 2 3 2 2 4"
CASES = (  # (label, arch, space, extra train_arc flags)
    ("conv, lce default winner", "32 5 32 5 16 5 32 5", "conv", ["--distill"]),
    ("conv, tflite_int8 winner", "16 5 16 0 16 0 16 5", "conv", ["--distill", "--target", "tflite_int8"]),
    ("float baseline", "32 0 64 0 128 0", "conv", []),
    ("micro default winner", MICRO_WINNER, "micro", ["--distill"]),
)


def paired(diffs: list[float]) -> str:
    """Mean of the paired differences with the half-width of its 95% interval, in points."""
    return interval(100 * np.asarray(diffs, float), "+.2f")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=DEFAULT_DATA)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--micro_seeds", default="0", help="seeds of the micro case (its retrains take 3x longer)")
    p.add_argument("--max_epochs", type=int, default=30)
    p.add_argument("--out", default=str(ROOT / "runs" / "bench" / "augment"))
    args = p.parse_args(argv)
    out = Path(args.out)
    rows, summary, conv_diffs = [], [], []
    for label, arch, space, extra in CASES:
        accuracy: dict[bool, list[float]] = {False: [], True: []}
        seeds = [int(s) for s in (args.micro_seeds if space == "micro" else args.seeds).split(",")]
        for seed in seeds:
            for augment in (False, True):
                run = out / f"{space}-{arch.replace(' ', '_')[:40]}-seed{seed}-{'aug' if augment else 'plain'}"
                record = train_once(["-fixed_arc", arch, "--space", space, "--data", args.data, "--seed", str(seed),
                                     *extra, "--augment" if augment else "--no-augment", "--no_tflite",
                                     "--max_epochs", str(args.max_epochs), "--cache_dir", str(out / "cache")], run)
                accuracy[augment].append(record["metrics"]["test_accuracy"])
            rows.append(f"| {label} | {seed} | {accuracy[False][-1]:.4f} | {accuracy[True][-1]:.4f} | "
                        f"{100 * (accuracy[True][-1] - accuracy[False][-1]):+.2f} |")
            log(rows[-1])
        diffs = [a - b for a, b in zip(accuracy[True], accuracy[False])]
        conv_diffs += diffs if space == "conv" else []
        summary.append(f"| {label} | `{arch}` | {np.mean(accuracy[False]):.4f} | {np.mean(accuracy[True]):.4f} | "
                       f"{paired(diffs)} |")
    flags = {label: " ".join(extra) for label, _, _, extra in CASES}
    write_section("augment", f"""## Shifted digits when retraining (`--augment`)

`python bench/bench_augment.py --seeds {args.seeds} --micro_seeds {args.micro_seeds} --max_epochs {args.max_epochs}`:
mnist-10k, each architecture retrained by `train_arc.py -fixed_arc ARCH --space SPACE --data ../shared/data/mnist-10k.npz --seed S` with the
flags its search printed, once with `--no-augment` and once with `--augment` (random shifts of up to 3 pixels,
no flips), {args.max_epochs} epochs at most. The difference is paired by seed (test accuracy, points, mean with
its 95% interval over the seeds, t distribution; the micro case on seeds {args.micro_seeds} only).

| architecture | arch | test acc, plain | test acc, shifted | shifted minus plain (points) |
|---|---|---|---|---|
{chr(10).join(summary)}
| every conv-space pair | | | | {paired(conv_diffs)} |

Per seed:

| architecture | seed | plain | shifted | difference (points) |
|---|---|---|---|---|
{chr(10).join(rows)}

Flags beyond the above: {"; ".join(f"{k}: `{v}`" for k, v in flags.items() if v)}.
""")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
