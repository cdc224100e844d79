"""Weight-sharing fidelity: does the supernet rank architectures as standalone training does?

    python bench/bench_fidelity.py [--archs 16] [--retrain_epochs 10] [--epochs 20] \
        [--variants uniform,distill,sandwich,sandwich+distill]

1. ``--archs`` architectures spread across the conv space: a seeded pool of 4,000 uniform draws sorted by
   size, one taken at each of ``--archs`` evenly spaced size quantiles (so tiny and large networks, and
   every layer type, are represented).
2. Each is trained from scratch with ``train_arc --max_epochs --retrain_epochs --no-augment`` (the images the
   supernet sees), once per seed of ``--standalone_seeds`` (cached in ``--out/standalone``). The ground truth is
   its test accuracy, the mean over the seeds (one seed's accuracy is a noisy estimate of what it trains to).
3. For each supernet variant, the search's child phase trains the shared weights for ``--epochs`` epochs
   of ``--child_steps`` minibatches (the search's own code, no strategy involved); each architecture is
   then scored with the shared weights (own BatchNorm statistics, inference mode) on the whole validation
   split, the split the search ranks with, and on the test split.
4. Kendall's tau between shared-weight accuracy and the ground truth, per variant and split; and, for scale, the
   tau that ranking by one standalone training reaches against the same truth.

``--stage standalone`` only does 1-2, ``--stage supernets`` only 3. Writes the ``fidelity`` section of BENCHMARKS.md.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # before anything imports TensorFlow

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np
from common import DEFAULT_DATA, ROOT, kendall_tau, log, write_section
from picks import train_once

from enas.fine_tune import finalist_minibatches
from enas.search import Search, SearchConfig
from enas.strategies.random import RandomStrategy
from qnas.arch import Architecture
from qnas.data import Dataset, load_dataset
from qnas.parent import get_parent
from qnas.space import SearchSpace
from qnas.spaces import get_space

# supernet training options of the child phase (SearchConfig fields), by variant name; a variant with "supernet"
# scores that variant's trained shared weights with other evaluation options (calib_size: BatchNorm calibration images;
# finalist_steps: each architecture first trains alone from the shared weights, as the search's finalists do, on the
# minibatches of seed "draw", by default the supernet's seed); supernet None: untrained weights (the control)
VARIANTS: dict[str, dict] = {
    "uniform": {"distill": 0.0, "sandwich": False, "finalist_steps": 0},
    "distill": {"distill": 0.5, "sandwich": False, "finalist_steps": 0},
    "sandwich": {"distill": 0.0, "sandwich": True, "finalist_steps": 0},
    "sandwich+distill": {"distill": 0.5, "sandwich": True, "finalist_steps": 0},
    "distill+features": {"distill": 0.5, "sandwich": False, "feature_distill": 0.1, "finalist_steps": 0},
    "uniform-calib1024": {"supernet": "uniform", "calib_size": 1024},
    "uniform+alone200": {"supernet": "uniform", "finalist_steps": 200},
    "uniform+alone200-draw1": {"supernet": "uniform", "finalist_steps": 200, "draw": 1},
    "uniform+alone200-draw2": {"supernet": "uniform", "finalist_steps": 200, "draw": 2},
    "uniform+alone100": {"supernet": "uniform", "finalist_steps": 100},
    "untrained+alone200": {"supernet": None, "finalist_steps": 200},
}


def spread_archs(space: SearchSpace, data: Dataset, count: int, seed: int, pool: int = 4000) -> list[Architecture]:
    """``count`` architectures at evenly spaced size quantiles of a seeded pool of uniform draws."""
    drawn = [space.decode(d) for d in RandomStrategy(space.decisions(), seed=seed).ask(pool)]
    unique = list({a.to_string(): a for a in drawn}.values())
    unique.sort(key=lambda a: space.bits(a, data.input_shape, data.num_classes))
    picks = [unique[int((k + 0.5) * len(unique) / count)] for k in range(count)]
    return picks


def standalone_once(arch: Architecture, k: int, seed: int, args: argparse.Namespace, out: Path) -> dict:
    """``arch`` trained from scratch with one seed (cached): its result.json."""
    return train_once(["-fixed_arc", arch.to_string(), "--space", "conv", "--data", args.data,
                       "--max_epochs", str(args.retrain_epochs), "--seed", str(seed), "--no-augment", "--no_tflite",
                       "--cache_dir", str(out / "cache")],
                      out / "standalone" / (f"arch{k}" if seed == 0 else f"arch{k}-seed{seed}"))


def standalone(arch: Architecture, k: int, args: argparse.Namespace, out: Path) -> dict:
    """``arch`` trained from scratch once per seed: seed 0's best validation accuracy (on the search's split, which
    train_arc draws from the seed) and every seed's test accuracy."""
    results = [standalone_once(arch, k, seed, args, out) for seed in range(args.standalone_seeds)]
    test = [r["metrics"]["test_accuracy"] for r in results]
    return {"val": results[0]["metrics"]["best_val_accuracy"], "test": float(np.mean(test)), "test_seeds": test,
            "kib": results[0]["size"]["kib"]}


def shared_scores(variant: str, archs: list[Architecture], args: argparse.Namespace, out: Path,
                  space: SearchSpace, data: Dataset) -> dict:
    """Train a supernet with ``variant``'s options for ``--epochs`` child phases; score every arch (cached)."""
    path = out / f"shared-{variant}-ep{args.epochs}-steps{args.child_steps}-seed{args.seed}.json"
    if path.exists():
        return json.loads(path.read_text())
    parent = get_parent(space, data, seed=args.seed, cache_dir=str(out / "cache"), log=log)
    options = dict(VARIANTS[variant])
    trained_as = options.pop("supernet", variant)
    draw = options.pop("draw", args.seed)
    options = {**VARIANTS.get(trained_as, {}), **options}
    config = SearchConfig(epochs=args.epochs, child_steps=args.child_steps, seed=args.seed, **options)
    run_dir = out / "supernets" / f"{trained_as or 'untrained'}-seed{args.seed}"
    search = Search(space, data, parent, config, run_dir, log=log)
    epochs = args.epochs if trained_as else 0
    if trained_as:
        search.restore()  # a killed run continues from its last epoch
    minutes_path = run_dir / "minutes.json"
    minutes = json.loads(minutes_path.read_text()) if minutes_path.exists() else 0.0
    for epoch in range(int(search.epoch.numpy()) + 1, epochs + 1):
        start = time.time()
        search.child_phase(epoch)
        minutes += (time.time() - start) / 60
        search.epoch.assign(epoch)
        search.manager.save(checkpoint_number=epoch)  # the trained supernet is also bench_controller.py's
        minutes_path.write_text(json.dumps(minutes))
    (run_dir / "variant.json").write_text(json.dumps({"variant": trained_as, "epochs": args.epochs, "seed": args.seed,
                                                      "child_steps": args.child_steps, "cache": str(out / "cache")}))
    batches = finalist_minibatches(draw, len(data.x_train), config.batch_size, config.finalist_steps)
    scores = {"val": [], "test": [], "train_minutes": round(minutes, 2)}
    start = time.time()
    for a in archs:  # as the search scores its finalists, on both splits
        val, test = search.scored_alone(a, [(data.x_val, data.y_val), (data.x_test, data.y_test)], batches)
        scores["val"].append(val["acc"])
        scores["test"].append(test["acc"])
    scores["score_seconds_per_arch"] = round((time.time() - start) / len(archs), 1)
    path.write_text(json.dumps(scores))
    return scores


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=DEFAULT_DATA)
    p.add_argument("--out", default=str(ROOT / "runs" / "bench" / "fidelity"))
    p.add_argument("--archs", type=int, default=16)
    p.add_argument("--retrain_epochs", type=int, default=10)
    p.add_argument("--standalone_seeds", type=int, default=3, help="standalone trainings per architecture")
    p.add_argument("--sample_seed", type=int, default=123)
    p.add_argument("--epochs", type=int, default=20, help="supernet epochs (the default search's)")
    p.add_argument("--child_steps", type=int, default=72)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--variants", default="uniform,distill,sandwich,sandwich+distill")
    p.add_argument("--extra_seeds", default="", help="more supernet seeds, comma-separated, for --extra_variants")
    p.add_argument("--extra_variants", default="uniform,uniform+alone200",
                   help="the variants also trained and scored with each of --extra_seeds")
    p.add_argument("--stage", default="all", choices=("all", "standalone", "supernets"))
    args = p.parse_args()
    if args.standalone_seeds < 2:
        p.error(f"--standalone_seeds must be at least 2 (the truth is a mean over seeds), got {args.standalone_seeds}")
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
    truth = [s["test"] for s in alone]  # what each architecture trains to: no run trains or selects on test
    one_run = kendall_tau([s["val"] for s in alone], truth)  # one standalone training ranked on the search's split
    by_seed = list(zip(*(s["test_seeds"] for s in alone)))  # one tuple of test accuracies per seed
    seed_to_seed = float(np.mean([kendall_tau(a, b) for a, b in itertools.combinations(by_seed, 2)]))
    table, rows = [], []
    for variant in args.variants.split(","):
        shared = shared_scores(variant, archs, args, out, space, data)
        tau_val = kendall_tau(shared["val"], truth)
        tau_test = kendall_tau(shared["test"], truth)
        tau_one = kendall_tau(shared["val"], [s["val"] for s in alone])
        gap = float(np.mean([s["test"] - v for s, v in zip(alone, shared["test"])]))
        scoring = shared.get("score_seconds_per_arch")
        table.append(f"| {variant} | {VARIANTS[variant]} | **{tau_val:.3f}** | {tau_test:.3f} | {tau_one:.3f} | "
                     f"{gap:.4f} | {shared['train_minutes']:.1f} | {'-' if scoring is None else scoring} |")
        log(table[-1])
        rows.append(shared)
    extra_seeds = [int(v) for v in args.extra_seeds.split(",") if v.strip()]
    seed_rows = []
    for variant in args.extra_variants.split(",") if extra_seeds else []:
        taus = [kendall_tau(shared_scores(variant, archs, argparse.Namespace(**{**vars(args), "seed": seed}), out, space,
                                          data)["val"], truth) for seed in [args.seed, *extra_seeds]]
        seed_rows.append(f"| {variant} | {' | '.join(f'{t:.3f}' for t in taus)} | **{np.mean(taus):.3f}** |")
        log(seed_rows[-1])
    seed_table = "" if not seed_rows else f"""
Other supernets (`--extra_seeds {args.extra_seeds} --extra_variants {args.extra_variants}`): tau on validation vs
truth, one supernet per seed (each architecture's own minibatches drawn from the supernet's seed).

| variant | {' | '.join(f'seed {v}' for v in [args.seed, *extra_seeds])} | mean |
|---|{'---|' * (len(extra_seeds) + 2)}
{chr(10).join(seed_rows)}
"""
    arch_rows = [f"| `{a.to_string()}` | {s['kib']:.2f} | {s['val']:.4f} | {s['test']:.4f} | "
                 + " | ".join(f"{r['val'][k]:.4f}" for r in rows) + " |" for k, (a, s) in enumerate(zip(archs, alone))]
    names = args.variants.split(",")
    write_section("fidelity", f"""## Weight-sharing fidelity (Kendall's tau)

`python bench/bench_fidelity.py --archs {args.archs} --retrain_epochs {args.retrain_epochs} --standalone_seeds \
{args.standalone_seeds} --epochs {args.epochs} --child_steps {args.child_steps} --seed {args.seed} --variants {args.variants}\
{f' --extra_seeds {args.extra_seeds} --extra_variants {args.extra_variants}' if extra_seeds else ''}`

{len(archs)} conv architectures spread across the space (evenly spaced size quantiles of 4,000 uniform draws,
seed {args.sample_seed}). "Standalone": `train_arc.py --max_epochs {args.retrain_epochs} --no-augment --seed S` from
scratch (the images the supernet trains on) for S = 0 to {args.standalone_seeds - 1}. The ground truth is each
architecture's test accuracy, the mean over those seeds: the 2,000 test images are the only ones no run trains on or
selects with (train_arc draws its validation split from the seed, so seeds 1 and up trained on the search's validation
images). "Shared": the supernet after {args.epochs} child phases of {args.child_steps} minibatches (the search's
code), each architecture with its own BatchNorm statistics in inference mode, on the whole validation split of seed 0
(the split the search ranks with) and on the test images. One supernet per variant (seed {args.seed}); a variant
naming a `supernet` scores that variant's shared weights again with other evaluation options (`calib_size`: the
training images each child's BatchNorm statistics are measured on; the search uses 256). `finalist_steps` N: each
architecture first trains N minibatches alone from the shared weights (a fresh Adam, learning rate 1e-3, the same
minibatches for every architecture, drawn from seed `draw`, by default the supernet's), as the search's finalists
now do before its last ranking (`--finalist_steps`, default 200); `supernet` None: the same N minibatches from
untrained weights, the control that shows what the shared weights contribute.

What ranking by standalone training itself reaches against the same truth: one training per architecture ranked on
the search's validation split (seed 0), tau **{one_run:.3f}**; one seed's test accuracies against another's, tau
{seed_to_seed:.3f} on average. The architectures' true accuracies lie close together (most between 0.97 and 0.99), so
a single training's noise already reorders them.

| variant | options | tau, shared on validation vs truth | tau, shared on test vs truth | tau, shared on validation vs seed 0's standalone validation | truth - shared on test (mean) | supernet minutes | scoring seconds per architecture |
|---|---|---|---|---|---|---|---|
{chr(10).join(table)}
{seed_table}
| arch | KiB | standalone val (seed 0) | standalone test (mean: truth) | {' | '.join(f'shared val ({n})' for n in names)} |
|---|---|---|---|{'---|' * len(names)}
{chr(10).join(arch_rows)}
""")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
