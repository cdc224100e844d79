"""Compression operators on real MNIST: pruning by utility, PCA rank reduction, warm starts from the parent.

    nice python bench/bench_compression.py --data ../shared/data/mnist-10k.npz [--parts prune,pca,warm]

Prints markdown tables (test accuracy on the 2000 test images) and writes the raw numbers to
``--json``. Parts:

* ``prune``: an over-sized 784-1024-10 float MLP trained for 5 epochs while ``ContributionTracker``
  tracks each unit's utility; half of the hidden units removed by lowest utility, highest
  utility, random (several seeds) and L1 norm; plain slicing and with the least-squares refit of
  the next layer; before and after one fine-tuning epoch (Adam 1e-4). Two training regimes: Adam
  1e-2 (many units end up unused) and Adam 1e-3.
* ``pca``: the cached float parent 784-256-256-10; each hidden layer to rank 128 (50%) and lower
  by PCA, next to pruning it to 128 units, before and after one fine-tuning epoch.
* ``warm``: ``train_arc``'s trainer (``qnas.trainer.train_architecture``) for the same architecture
  with ``--init parent`` and ``--init random``, a short fixed budget, several seeds; plus the test
  accuracy right after the warm start for each unit-selection method.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import tensorflow as tf

from ecomp_tf.compress import evaluate_accuracy, fine_tune
from ecomp_tf.rank import rank_params, rank_reduce
from qnas.arch import parse_arch
from qnas.contribution import ContributionTracker
from qnas.data import load_dataset
from qnas.models import build_model
from qnas.parent import get_parent, probe_batch
from qnas.prune import keep_units, lowest
from qnas.records import run_record, write_json_atomic
from qnas.seeding import seed_everything
from qnas.spaces import get_space
from qnas.warmstart import init_from_parent, l1_scores

FT_LR = 1e-4


def log(text: str) -> None:
    print(text, flush=True)


def _ft_copy(model, data, seed: int) -> float:
    """Test accuracy after one fine-tuning epoch of a copy (the model itself stays as it is)."""
    copy = tf.keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    fine_tune(copy, data, 1, FT_LR, seed=seed, log=lambda _: None)
    return evaluate_accuracy(copy, data)


def _stat(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{np.mean(values):.4f} ± {np.std(values):.4f}"


def bench_prune(data, seeds: int, sample: np.ndarray) -> dict:
    """Half of an over-sized layer removed by different selections (see the module docstring)."""
    out = {}
    for lr in (1e-2, 1e-3):
        seed_everything(0)
        model = build_model(get_space("mlp"), parse_arch("1024 0"), data.input_shape, data.num_classes)
        model.compile(tf.keras.optimizers.legacy.Adam(lr), "sparse_categorical_crossentropy")
        tracker = ContributionTracker(data.x_train, data.y_train, every=10, batch_size=256)
        model.fit(data.x_train, data.y_train, batch_size=100, epochs=5, verbose=0, callbacks=[tracker])
        utility = tracker.utilities["h0_linear"]
        full = evaluate_accuracy(model, data)
        unused = int((utility < 1e-3 * utility.max()).sum())
        log(f"prune: Adam {lr:g}: full model {full:.4f}, {unused}/1024 units with utility < 1e-3 of the max")
        selections = {"lowest utility": [utility], "highest utility": [-utility],
                      "random": [np.random.default_rng(s).random(1024) for s in range(seeds)],
                      "lowest L1 norm (EComp)": [l1_scores(model, "h0_linear")]}
        rows = {}
        for name, score_list in selections.items():
            res = {"plain": [], "plain_ft": [], "refit": [], "refit_ft": []}
            for i, scores in enumerate(score_list):
                kept = lowest(scores, 512)
                plain = keep_units(model, {"h0_linear": kept})
                refit = keep_units(model, {"h0_linear": kept}, refit=sample)
                res["plain"].append(evaluate_accuracy(plain, data))
                res["plain_ft"].append(_ft_copy(plain, data, seed=i))
                res["refit"].append(evaluate_accuracy(refit, data))
                res["refit_ft"].append(_ft_copy(refit, data, seed=i))
            rows[name] = res
            log(f"  {name:24s} " + "  ".join(f"{k} {_stat(v)}" for k, v in res.items()))
        out[f"adam{lr:g}"] = {"full": full, "unused_units": unused, "rows": rows}
    return out


def bench_pca(data, parent, sample: np.ndarray) -> dict:
    """Rank 128 (50%) by PCA versus pruning to 128 units, per hidden layer of the float parent."""
    model = parent.model
    full = evaluate_accuracy(model, data)
    out = {"full": full, "params": int(model.count_params()), "rows": []}
    log(f"pca: float parent {full:.4f}, {model.count_params()} parameters")
    for layer in ("h0_linear", "h1_linear"):
        ranks = (128, 64, 32, 16, 8) if layer == "h0_linear" else (128, 64)
        variants = {f"PCA rank {k}": (lambda lay=layer, k=k: rank_reduce(model, lay, k, sample)) for k in ranks}
        variants["prune to 128, L1"] = lambda lay=layer: keep_units(model, {lay: lowest(l1_scores(model, lay), 128)})
        variants["prune to 128, L1 + refit"] = lambda lay=layer: keep_units(
            model, {lay: lowest(l1_scores(model, lay), 128)}, refit=sample)
        for name, make in variants.items():
            new = make()
            row = {"layer": layer, "variant": name, "params": int(new.count_params()),
                   "before_ft": evaluate_accuracy(new, data), "after_ft": _ft_copy(new, data, seed=0)}
            if name.startswith("PCA"):
                row["layer_params"] = rank_params(model, layer, int(name.split()[-1]))
            out["rows"].append(row)
            log(f"  {layer} {name:26s} params {row['params']:7d}  before {row['before_ft']:.4f}  "
                f"after 1 epoch {row['after_ft']:.4f}")
    return out


def bench_warm(data, data_path: str, archs: list[str], seeds: int, epochs: int, cache_dir: str) -> dict:
    """--init parent versus --init random with the trainer, same budget; and accuracy right after init."""
    from qnas.trainer import TrainConfig, train_architecture

    space = get_space("mlp")
    out: dict = {"epochs": epochs, "runs": [], "at_init": []}
    for seed in range(seeds):
        parent = get_parent(space, data, seed=seed, cache_dir=cache_dir, log=lambda _: None)
        x_sample = probe_batch(data, seed=seed)
        for arch in archs:
            for method in ("auto", "contribution", "activation", "random"):
                seed_everything(seed)
                child = build_model(space, parse_arch(arch, space), data.input_shape, data.num_classes)
                init_from_parent(child, parent.model, x_sample, method=method, seed=seed)
                out["at_init"].append({"arch": arch, "seed": seed, "method": method, "test": evaluate_accuracy(child, data)})
            for init in ("random", "parent"):
                with tempfile.TemporaryDirectory() as tmp:
                    t0 = time.time()
                    cfg = TrainConfig(arch=arch, space="mlp", data_path=data_path, max_epochs=epochs, seed=seed,
                                      init=init, output_dir=tmp, cache_dir=cache_dir, tflite=False, patience=epochs)
                    result = train_architecture(cfg, log=lambda _: None, progress=False)
                    history = result.record["history"]
                run = {"arch": arch, "seed": seed, "init": init, "test": result.test_accuracy,
                       "val_by_epoch": [h["val_accuracy"] for h in history], "seconds": round(time.time() - t0, 1)}
                out["runs"].append(run)
                log(f"warm: {arch} seed {seed} init {init:6s} test {run['test']:.4f} "
                    f"val by epoch {[round(v, 4) for v in run['val_by_epoch']]}")
    return out


def markdown(results: dict) -> str:
    lines = []
    if "prune" in results:
        lines += [("| training | units removed (of 1024) by | test acc. before fine-tuning | after 1 epoch "
                  "| with LS refit | refit + 1 epoch |"), "|---|---|---|---|---|---|"]
        for regime, r in results["prune"].items():
            lines.append(f"| {regime}, full model | - | {r['full']:.4f} | | | |")
            for name, res in r["rows"].items():
                lines.append(f"| {regime} | {name} | {_stat(res['plain'])} | {_stat(res['plain_ft'])} | "
                             f"{_stat(res['refit'])} | {_stat(res['refit_ft'])} |")
        lines.append("")
    if "pca" in results:
        p = results["pca"]
        lines += ["| layer (256 units) | operator | model parameters | test acc. before fine-tuning | after 1 epoch |",
                  "|---|---|---|---|---|", f"| - | float parent | {p['params']} | {p['full']:.4f} | |"]
        for row in p["rows"]:
            lines.append(f"| {row['layer']} | {row['variant']} | {row['params']} | {row['before_ft']:.4f} | "
                         f"{row['after_ft']:.4f} |")
        lines.append("")
    if "warm" in results:
        w = results["warm"]
        lines += [(f"| architecture | init | test acc. after {w['epochs']} epochs (mean ± sd over seeds) "
                  "| val acc. after epoch 1 |"), "|---|---|---|---|"]
        for arch in dict.fromkeys(r["arch"] for r in w["runs"]):
            for init in ("random", "parent"):
                runs = [r for r in w["runs"] if r["arch"] == arch and r["init"] == init]
                lines.append(f"| {arch} | {init} | {_stat([r['test'] for r in runs])} | "
                             f"{_stat([r['val_by_epoch'][0] for r in runs])} |")
        lines += ["", ("| architecture | test acc. right after warm start: auto (L1) | contribution | activation "
                  "| random |"), "|---|---|---|---|---|"]
        for arch in dict.fromkeys(r["arch"] for r in w["at_init"]):
            cells = [_stat([r["test"] for r in w["at_init"] if r["arch"] == arch and r["method"] == m])
                     for m in ("auto", "contribution", "activation", "random")]
            lines.append(f"| {arch} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/mnist-10k.npz"))
    parser.add_argument("--parts", default="prune,pca,warm")
    parser.add_argument("--seeds", type=int, default=5, help="random pruning seeds (default 5)")
    parser.add_argument("--warm_seeds", type=int, default=2)
    parser.add_argument("--warm_epochs", type=int, default=3)
    parser.add_argument("--archs", default="128 0 128 0,256 1 256 1,128 2 128 2")
    parser.add_argument("--cache_dir", default="cache")
    parser.add_argument("--json", default="runs/bench_compression.json")
    args = parser.parse_args()
    data = load_dataset(data_path=args.data, seed=0)
    parts = set(args.parts.split(","))
    rng = np.random.default_rng(0)
    sample = data.x_train[np.sort(rng.choice(len(data.x_train), 2000, replace=False))]
    results: dict = {}
    t0 = time.time()
    if "prune" in parts:
        results["prune"] = bench_prune(data, args.seeds, sample)
    if "pca" in parts:
        parent = get_parent(get_space("mlp"), data, seed=0, cache_dir=args.cache_dir, log=log)
        results["pca"] = bench_pca(data, parent, sample)
    if "warm" in parts:
        results["warm"] = bench_warm(data, args.data, args.archs.split(","), args.warm_seeds, args.warm_epochs, args.cache_dir)
    results["seconds"] = round(time.time() - t0, 1)
    write_json_atomic(args.json, {**results, **run_record(0)})
    print("\n" + markdown(results), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
