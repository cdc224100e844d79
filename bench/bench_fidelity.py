"""Weight-sharing fidelity: does the supernet rank architectures as standalone training does?

    python bench/bench_fidelity.py [--archs 16] [--retrain_epochs 10] [--epochs 20] \
        [--variants uniform,distill,sandwich,sandwich+distill]

1. ``--archs`` architectures spread across the conv space: a seeded pool of 4,000 uniform draws sorted by
   size, one taken at each of ``--archs`` evenly spaced size quantiles (so tiny and large networks, and
   every layer type, are represented).
2. Each is trained from scratch with ``train_arc --max_epochs --retrain_epochs`` (once; cached in
   ``--out/standalone``): its best accuracy on the 800-image validation split and its test accuracy.
3. For each supernet variant, the search's child phase trains the shared weights for ``--epochs`` epochs
   of ``--child_steps`` minibatches (the search's own code, no strategy involved); each architecture is
   then scored with the shared weights (own BatchNorm statistics, inference mode) on the whole validation
   split, the split the search ranks with, and on the test split.
4. Kendall's tau between shared-weight and standalone accuracy, per variant and split.

``--stage standalone`` only does 1-2, ``--stage supernets`` only 3. Writes the ``fidelity`` section of BENCHMARKS.md.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # before anything imports TensorFlow

import argparse
import json
import time
from pathlib import Path

import numpy as np
from common import DEFAULT_DATA, ROOT, kendall_tau, log, write_section

import train_arc
from enas.search import Search, SearchConfig
from enas.strategies.random import RandomStrategy
from qnas.arch import Architecture
from qnas.data import Dataset, load_dataset
from qnas.parent import get_parent
from qnas.space import SearchSpace
from qnas.spaces import get_space

# supernet training options of the child phase (SearchConfig fields), by variant name; a variant with "supernet"
# scores that variant's trained shared weights with other evaluation options (calib_size: BatchNorm calibration images)
VARIANTS: dict[str, dict] = {
    "uniform": {"distill": 0.0, "sandwich": False},
    "distill": {"distill": 0.5, "sandwich": False},
    "sandwich": {"distill": 0.0, "sandwich": True},
    "sandwich+distill": {"distill": 0.5, "sandwich": True},
    "distill+features": {"distill": 0.5, "sandwich": False, "feature_distill": 0.1},
    "uniform-calib1024": {"supernet": "uniform", "calib_size": 1024},
}


def spread_archs(space: SearchSpace, data: Dataset, count: int, seed: int, pool: int = 4000) -> list[Architecture]:
    """``count`` architectures at evenly spaced size quantiles of a seeded pool of uniform draws."""
    drawn = [space.decode(d) for d in RandomStrategy(space.decisions(), seed=seed).ask(pool)]
    unique = list({a.to_string(): a for a in drawn}.values())
    unique.sort(key=lambda a: space.bits(a, data.input_shape, data.num_classes))
    picks = [unique[int((k + 0.5) * len(unique) / count)] for k in range(count)]
    return picks


def standalone(arch: Architecture, k: int, args: argparse.Namespace, out: Path) -> dict:
    """Best validation and test accuracy of ``arch`` trained from scratch (cached)."""
    train_dir = out / "standalone" / f"arch{k}"
    if not (train_dir / "result.json").exists():
        rc = train_arc.main(["-fixed_arc", arch.to_string(), "--space", "conv", "--data", args.data,
                             "--max_epochs", str(args.retrain_epochs), "--output_dir", str(train_dir),
                             "--no_tflite", "--cache_dir", str(out / "cache"),
                             *(["--resume"] if (train_dir / "run_config.json").exists() else [])])
        if rc:
            raise SystemExit(rc)
    result = json.loads((train_dir / "result.json").read_text())
    return {"val": result["metrics"]["best_val_accuracy"], "test": result["metrics"]["test_accuracy"],
            "kib": result["size"]["kib"]}


def shared_scores(variant: str, archs: list[Architecture], args: argparse.Namespace, out: Path,
                  space: SearchSpace, data: Dataset) -> dict:
    """Train a supernet with ``variant``'s options for ``--epochs`` child phases; score every arch (cached)."""
    path = out / f"shared-{variant}-ep{args.epochs}-steps{args.child_steps}-seed{args.seed}.json"
    if path.exists():
        return json.loads(path.read_text())
    parent = get_parent(space, data, seed=args.seed, cache_dir=str(out / "cache"), log=log)
    options = dict(VARIANTS[variant])
    trained_as = options.pop("supernet", variant)
    options = {**VARIANTS[trained_as], **options}
    config = SearchConfig(epochs=args.epochs, child_steps=args.child_steps, seed=args.seed, **options)
    run_dir = out / "supernets" / f"{trained_as}-seed{args.seed}"
    search = Search(space, data, parent, config, run_dir, log=log)
    search.restore()  # a killed run continues from its last epoch
    minutes_path = run_dir / "minutes.json"
    minutes = json.loads(minutes_path.read_text()) if minutes_path.exists() else 0.0
    for epoch in range(int(search.epoch.numpy()) + 1, args.epochs + 1):
        start = time.time()
        search.child_phase(epoch)
        minutes += (time.time() - start) / 60
        search.epoch.assign(epoch)
        search.manager.save(checkpoint_number=epoch)  # the trained supernet is also bench_controller.py's
        minutes_path.write_text(json.dumps(minutes))
    (run_dir / "variant.json").write_text(json.dumps({"variant": trained_as, "epochs": args.epochs, "seed": args.seed,
                                                      "child_steps": args.child_steps, "cache": str(out / "cache")}))
    ev = search.evaluator
    scores = {"val": [ev.evaluate_one(a, data.x_val, data.y_val)["acc"] for a in archs],
              "test": [ev.evaluate_one(a, data.x_test, data.y_test)["acc"] for a in archs],
              "train_minutes": round(minutes, 2)}
    path.write_text(json.dumps(scores))
    return scores


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=DEFAULT_DATA)
    p.add_argument("--out", default=str(ROOT / "runs" / "bench" / "fidelity"))
    p.add_argument("--archs", type=int, default=16)
    p.add_argument("--retrain_epochs", type=int, default=10)
    p.add_argument("--sample_seed", type=int, default=123)
    p.add_argument("--epochs", type=int, default=20, help="supernet epochs (the default search's)")
    p.add_argument("--child_steps", type=int, default=72)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--variants", default="uniform,distill,sandwich,sandwich+distill")
    p.add_argument("--stage", default="all", choices=("all", "standalone", "supernets"))
    args = p.parse_args()
    out = Path(args.out)
    space = get_space("conv")
    data = load_dataset(data_path=args.data, seed=0)
    archs = spread_archs(space, data, args.archs, args.sample_seed)
    if args.stage == "supernets":  # the shared-weight side only (e.g. while another process trains the standalone side)
        for variant in args.variants.split(","):
            log(f"{variant}: {shared_scores(variant, archs, args, out, space, data)}")
        return 0
    alone = [standalone(a, k, args, out) for k, a in enumerate(archs)]
    for a, s in zip(archs, alone):
        log(f"standalone {a.to_string():<28s} {s['kib']:8.2f} KiB val {s['val']:.4f} test {s['test']:.4f}")
    if args.stage == "standalone":
        return 0
    ceiling = kendall_tau([s["val"] for s in alone], [s["test"] for s in alone])
    table, rows = [], []
    for variant in args.variants.split(","):
        shared = shared_scores(variant, archs, args, out, space, data)
        tau_val = kendall_tau(shared["val"], [s["val"] for s in alone])
        tau_test = kendall_tau(shared["test"], [s["test"] for s in alone])
        gap = float(np.mean([s["val"] - v for s, v in zip(alone, shared["val"])]))
        table.append(f"| {variant} | {VARIANTS[variant]} | **{tau_val:.3f}** | {tau_test:.3f} | {gap:.4f} | "
                     f"{shared['train_minutes']:.1f} |")
        log(table[-1])
        rows.append(shared)
    arch_rows = [f"| `{a.to_string()}` | {s['kib']:.2f} | {s['val']:.4f} | {s['test']:.4f} | "
                 + " | ".join(f"{r['val'][k]:.4f}" for r in rows) + " |" for k, (a, s) in enumerate(zip(archs, alone))]
    names = args.variants.split(",")
    write_section("fidelity", f"""## Weight-sharing fidelity (Kendall's tau)

`python bench/bench_fidelity.py --archs {args.archs} --retrain_epochs {args.retrain_epochs} --epochs {args.epochs} \
--child_steps {args.child_steps} --seed {args.seed} --variants {args.variants}`

{len(archs)} conv architectures spread across the space (evenly spaced size quantiles of 4,000 uniform draws,
seed {args.sample_seed}). "Standalone": `train_arc.py --max_epochs {args.retrain_epochs}` from scratch, best accuracy on
the 800 validation images and test accuracy. "Shared": the supernet after {args.epochs} child phases of
{args.child_steps} minibatches (the search's code), each architecture with its own BatchNorm statistics in inference
mode, on the whole validation split (the split the search ranks with) and on the 2,000 test images. One supernet per
variant (seed {args.seed}); a variant naming a `supernet` scores that variant's shared weights again with other
evaluation options (`calib_size`: the training images each child's BatchNorm statistics are measured on; the
search uses 256). Standalone validation against standalone test: tau {ceiling:.3f} (what the
validation split's noise allows).

| variant | options | tau, validation | tau, test | standalone - shared (val, mean) | supernet minutes |
|---|---|---|---|---|---|
{chr(10).join(table)}

| arch | KiB | standalone val | standalone test | {' | '.join(f'shared val ({n})' for n in names)} |
|---|---|---|---|{'---|' * len(names)}
{chr(10).join(arch_rows)}
""")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
