"""EComp, faithful vs improved (and the steps in between), several seeded runs each: a markdown table.

    nice python bench/bench_ecomp.py --data ../shared/data/mnist-10k.npz --runs 10 \
        --variants faithful,improved --pop_size 50 --epochs 1 --final_batches 10

Each variant runs seeds 0..runs-1 on the same cached float parent, the variants interleaved seed by
seed so that they share the load of a shared machine alike. Reported per variant: test
accuracy of the picked network (mean +- std, min), its size in bits as a fraction of the parent's,
outlier runs (more than 5 points below the parent's test accuracy) and seconds per run. The
``ablation`` variants switch the improvements on one at a time, each row adding to the previous one.
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from ecomp_tf.config import Configs

OUTLIER_DROP = 0.05

# cumulative steps from the reference to our improved preset; each adds to the one before
ABLATION: list[tuple[str, dict[str, Any]]] = [
    ("faithful", {}),
    ("+ elitism (2)", {"ELITES": 2}),
    ("+ tournament selection", {"SELECTION": "tournament"}),
    ("+ width genes", {"WIDTH_MUTATION_RATE": 0.1}),
    ("+ precision genes, size in bits", {"TYPE_MUTATION_RATE": 0.05, "INIT_TYPES": "random", "COMPRESSION": "bits"}),
    ("+ accuracy in fitness (1,2,1)", {"LOSS_WEIGHTS": (1.0, 2.0, 1.0)}),
    ("+ final pick: top 8 on validation", {"FINAL_SPLIT": "val", "FINAL_CANDIDATES": 8}),
    ("+ fine-tuning (= improved)", {"FINETUNE_STEPS": 5, "FINAL_FINETUNE_EPOCHS": 1.0}),
]


def variants(names: list[str], common: dict[str, Any], improved_generations: int | None) -> list[tuple[str, Configs]]:
    """The named variants ('faithful', 'improved', 'ablation') as configs with the common settings."""
    out: list[tuple[str, Configs]] = []
    for name in names:
        if name == "faithful":
            out.append(("faithful", Configs.faithful(**common)))
        elif name == "improved":
            extra = {"GENERATIONS": improved_generations} if improved_generations else {}
            out.append(("improved", Configs.improved(**{**common, **extra})))
        elif name == "ablation":
            cfg = Configs.faithful(**common)
            for label, change in ABLATION:
                cfg = cfg.with_changes(**change)
                out.append((label, cfg))
            assert cfg == Configs.improved(**common), "the ablation must end at the improved preset"
        elif ":" in name:  # e.g. "improved:WIDTH_MUTATION_RATE=0" (a preset with some fields changed)
            mode, _, changes = name.partition(":")
            parsed = {k.strip(): ast.literal_eval(v.strip())
                      for k, _, v in (item.partition("=") for item in changes.split(";"))}
            out.append((name, Configs.for_mode(mode, **{**common, **parsed})))
        else:
            raise SystemExit(f"unknown variant {name!r}; expected faithful, improved, ablation or MODE:KEY=VALUE;...")
    return out


def run_all(chosen: list[tuple[str, Configs]], runs: int, parent: Any, data: Any, out_dir: Path) -> list[dict]:
    """Every variant for seeds 0..runs-1, interleaved (seed 0 of each, then seed 1, ...) so that all
    variants see the same share of the load of a shared machine; raw rows go to ``out_dir``."""
    from ecomp_tf.evolution import run_ecomp

    results = [{"variant": label, "configs": cfg.as_dict(), "runs": []} for label, cfg in chosen]
    for seed in range(runs):
        for (label, cfg), res in zip(chosen, results):
            start = time.time()
            result = run_ecomp(parent, data, cfg, seed=seed)
            row = {"seed": seed, "test_accuracy": result.test_accuracy, "bits_ratio": result.bits_ratio,
                   "width_ratio": result.width_ratio, "arch": result.best.arch.readable(),
                   "seconds": time.time() - start}
            res["runs"].append(row)
            print(f"  {label} seed {seed}: {row['arch']} acc {result.test_accuracy:.4f} "
                  f"bits {result.bits_ratio:.4f} ({row['seconds']:.0f} s)", file=sys.stderr, flush=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2))
    return results


def table(results: list[dict[str, Any]], parent_acc: float) -> str:
    header = ("| variant | runs | test acc mean +- std | min acc | bits ratio mean +- std | max bits ratio "
              "| outliers (< parent - 5 pt) | s / run |")
    lines = [header, "|---|---|---|---|---|---|---|---|"]
    for res in results:
        acc = np.array([r["test_accuracy"] for r in res["runs"]])
        ratio = np.array([r["bits_ratio"] for r in res["runs"]])
        secs = np.array([r["seconds"] for r in res["runs"]])
        outliers = int(np.sum(acc < parent_acc - OUTLIER_DROP))
        lines.append(f"| {res['variant']} | {len(acc)} | {100 * acc.mean():.2f} +- {100 * acc.std():.2f} | "
                     f"{100 * acc.min():.2f} | {ratio.mean():.4f} +- {ratio.std():.4f} | {ratio.max():.4f} | "
                     f"{outliers} | {secs.mean():.0f} |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="Keras-layout .npz, e.g. ../shared/data/mnist-10k.npz")
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--variants", default="faithful,improved",
                   help="comma-separated: faithful, improved, ablation, or MODE:KEY=VALUE;KEY=VALUE (a changed preset)")
    p.add_argument("--pop_size", type=int, default=50)
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--generations", type=int, help="fixed generation count for every variant")
    p.add_argument("--improved_generations", type=int, help="generations of 'improved' (to match wall time)")
    p.add_argument("--final_batches", type=int, default=10, help="batches of the final ranking")
    p.add_argument("--cache_dir", default="cache")
    p.add_argument("--out", default="runs/bench_ecomp")
    args = p.parse_args()

    from qnas.data import load_dataset
    from qnas.parent import get_parent
    from qnas.spaces import get_space

    data = load_dataset(data_path=args.data)
    parent = get_parent(get_space("mlp"), data, cache_dir=args.cache_dir, log=lambda m: print(m, file=sys.stderr))
    common = {"POP_SIZE": args.pop_size, "EPOCHS": args.epochs, "FINAL_BATCHES": args.final_batches,
              "GENERATIONS": args.generations}
    chosen = variants([v.strip() for v in args.variants.split(",") if v.strip()], common, args.improved_generations)
    results = run_all(chosen, args.runs, parent, data, Path(args.out))
    command = " ".join(shlex.quote(a) for a in ["python", *sys.argv])
    print(f"EComp on {data.describe()}; parent 784-256-256-10 float, test accuracy {100 * parent.test_accuracy:.2f}%")
    print(f"command: `{command}`\n")
    print(table(results, parent.test_accuracy))
    return 0


if __name__ == "__main__":
    sys.exit(main())
