"""Retrain the float parents and binary / ternary architectures of both spaces; print a markdown table.

    nice python bench/bench_train_arc.py --data ../shared/data/mnist-10k.npz

Each row is one ``train_arc.py`` run with default settings (its exact command is in the table);
the time column is training time and its ratio to the float parent of the same space, measured
in this run. Outputs go to ``runs/bench_train_arc/<row>`` (replaced on every run of this script).
"""
from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf

from qnas.trainer import TrainConfig, train_architecture

# (space, architecture, what it is); the first row of each space is its float parent
ROWS = [
    ("mlp", "256 0 256 0", "float parent"),
    ("mlp", "256 1 256 1", "binary"),
    ("mlp", "256 2 256 2", "ternary"),
    ("conv", "32 0 64 0 128 0", "float parent"),
    ("conv", "32 1 64 1 64 1", "binary, 3 layers"),
    ("conv", "32 1 32 1 64 1 64 1", "binary, 4 layers"),
    ("conv", "32 1 64 1 64 1 64 1", "binary, 4 layers"),
    ("conv", "32 2 64 2 64 2 64 2", "ternary, 4 layers"),
]


def command(space: str, arch: str, data: str, max_epochs: int, seed: int) -> str:
    args = ["python", "train_arc.py", "-fixed_arc", arch, "--space", space, "--data", data]
    if max_epochs != 30:
        args += ["--max_epochs", str(max_epochs)]
    if seed != 0:
        args += ["--seed", str(seed)]
    return shlex.join(args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/mnist-10k.npz", help="Keras-layout .npz")
    parser.add_argument("--max_epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default="", help="run only rows whose 'space arch' contains this text")
    parser.add_argument("--output_root", default="runs/bench_train_arc")
    args = parser.parse_args(argv)

    table = [("| space | architecture | kind | test acc | KiB | bits ratio | MACs (binary share) | params "
              "| best / run epochs | train s (x parent) | command |"),
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    parent_seconds: dict[str, float] = {}
    for space, arch, kind in ROWS:
        if args.only not in f"{space} {arch}":
            continue
        out = Path(args.output_root) / f"{space}-{arch.replace(' ', '_')}-seed{args.seed}"
        shutil.rmtree(out, ignore_errors=True)
        tf.keras.backend.clear_session()
        config = TrainConfig(arch=arch, space=space, data_path=args.data, max_epochs=args.max_epochs,
                             seed=args.seed, output_dir=str(out))
        cmd = command(space, arch, args.data, args.max_epochs, args.seed)
        result = train_architecture(config, log=lambda line: None, progress=False, command=cmd)
        r, m = result.record, result.record["metrics"]
        seconds = r["train_seconds"]
        if kind == "float parent":
            parent_seconds[space] = seconds
        ratio = f"{seconds / parent_seconds[space]:.2f}" if space in parent_seconds else "n/a"
        table.append(
            f"| {space} | `{arch}` | {kind} | {m['test_accuracy']:.4f} | {r['size']['kib']:.2f} "
            f"| {r['size']['bits_ratio']:.4f} "
            f"| {r['macs']['total'] / 1e6:.2f} M ({100 * r['macs']['binary_share']:.0f}%) "
            f"| {r['params']:,} | {m['best_epoch']} / {m['epochs_run']} | {seconds:.0f} ({ratio}) | `{cmd}` |")
        print(table[-1], file=sys.stderr, flush=True)
    print("\n".join(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
