"""A parent that knows more than the training split: does search + the printed retrain command keep its knowledge?

    python bench/bench_parent.py [--space conv] [--small 2000] [--epochs 20] [--seeds 0] [--max_kib 105]

1. The user's parent: a float 784-256-256-10 Dense/ReLU MLP trained on all 8,000 training images of
   mnist-10k (Adam, 20 epochs); or, with ``--parent_kind conv``, the conv space's float network
   ``32 0 64 0 128 0`` that ``train_arc.py`` trains on them (7,200 of them; 800 validate), more accurate than
   the split alone trains.
2. The user's data: only the first ``--small`` of those images (a seeded 10% of them for validation) and
   the 2,000 test images, written to a temporary folder outside the repository.
3. ``search_arc_mnist.py --space SPACE --parent parent.keras --data small.npz --max_kib ...`` (every other
   setting at its default, except ``--epochs``), then the ``train_arc.py`` command it prints, unchanged.
   In the mlp space the parent warm-starts the retraining and teaches it (``--distill``); in the conv space it
   only teaches (``--init random --distill``), as train_arc warm-starts Dense/ReLU stacks only. Either way the
   command trains 100 epochs and keeps the last (``--max_epochs 100 --keep last``).
4. The same winner retrained more ways: from scratch (the command without the parent and its schedule), warm
   start only (``--parent``, mlp), the command printed before (30 epochs, the best validation epoch), the printed
   command, and that + ``--distill_features 0.1``; and, as a ceiling for what
   the architecture holds, from scratch on all the images the parent learned from (``--data`` the full file).

Writes the ``parent-knowledge`` section (mlp) or ``parent-knowledge-conv`` of BENCHMARKS.md.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # before anything imports TensorFlow

import argparse
import json
import shlex
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf
from common import DEFAULT_DATA, ROOT, interval, log, write_section
from picks import search_once, train_once, without


def make_parent(data_path: str, folder: Path) -> tuple[Path, float]:
    """The float MLP trained on every training image; its path and test accuracy (cached)."""
    path, info = folder / "parent.keras", folder / "parent.json"
    if not path.exists():
        d = np.load(data_path)
        tf.keras.utils.set_random_seed(0)
        model = tf.keras.Sequential([tf.keras.Input((28, 28)), tf.keras.layers.Flatten(),
                                     tf.keras.layers.Dense(256, activation="relu"),
                                     tf.keras.layers.Dense(256, activation="relu"),
                                     tf.keras.layers.Dense(10, activation="softmax")])
        model.compile(tf.keras.optimizers.legacy.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(d["x_train"] / 255.0, d["y_train"], epochs=20, batch_size=100, verbose=0)
        acc = float(model.evaluate(d["x_test"] / 255.0, d["y_test"], verbose=0)[1])
        model.save(path)
        info.write_text(json.dumps({"test_accuracy": acc}))
    return path, json.loads(info.read_text())["test_accuracy"]


SCHEDULE = ("--max_epochs", "--keep")  # the printed command's long schedule for a taught network
CONV_PARENT = "32 0 64 0 128 0"  # the conv space's own float parent, trained here on all the images


def make_conv_parent(data_path: str, folder: Path) -> tuple[Path, float]:
    """A float conv network trained by ``train_arc.py`` on every training image; its path and test accuracy."""
    record = train_once(["-fixed_arc", CONV_PARENT, "--space", "conv", "--data", data_path, "--seed", "0",
                         "--no_tflite"], folder / "conv-parent")
    return folder / "conv-parent" / "model.keras", record["metrics"]["test_accuracy"]


def make_small(data_path: str, folder: Path, n: int) -> Path:
    path = folder / f"small{n}.npz"
    if not path.exists():
        d = np.load(data_path)
        np.savez(path, x_train=d["x_train"][:n], y_train=d["y_train"][:n], x_test=d["x_test"], y_test=d["y_test"])
    return path


def retrain(command: list[str], out: Path) -> dict:
    record = train_once([*command, "--no_tflite"], out)
    return {"test": record["metrics"]["test_accuracy"], "kib": record["size"]["kib"],
            "bytes": record["deploy"]["predicted_bytes"]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=DEFAULT_DATA)
    p.add_argument("--space", default="mlp", choices=("mlp", "conv"), help="the space searched (default %(default)s)")
    p.add_argument("--parent_kind", default="mlp", choices=("mlp", "conv"),
                   help="the user's parent: the float MLP, or a float conv network (default %(default)s)")
    p.add_argument("--small", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--seeds", default="0")
    p.add_argument("--max_kib", type=float, default=105.0, help="10%% of the 1,050 KiB parent")
    p.add_argument("--reward_weights", help="the search's w_acc,w_sim,w_size (default: the search's own)")
    p.add_argument("--out", default=str(ROOT / "runs" / "bench" / "parent"))
    p.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "qnas-bench-parent"),
                   help="where the derived data and the parent go (outside the repository)")
    args = p.parse_args()
    work = Path(args.work)
    out = Path(args.out) if args.space == "mlp" else Path(f"{args.out}-{args.space}")
    out = out.with_name(f"{out.name}-weights") if args.reward_weights else out  # other searches: other folders
    work.mkdir(parents=True, exist_ok=True)
    small = make_small(args.data, work, args.small)
    if args.parent_kind == "conv":
        parent, parent_acc = make_conv_parent(args.data, work)
        out = out.with_name(f"{out.name}-conv-parent")
    else:
        parent, parent_acc = make_parent(args.data, work)
    log(f"parent: test accuracy {parent_acc:.4f}")
    rows, target, parent_bytes = [], "", 0
    by_way: dict[str, dict[str, list[float]]] = {}
    test_by_name: dict[str, list[float]] = {}  # the same test accuracies, by the short name of each way
    for seed in (int(s) for s in args.seeds.split(",")):
        run = out / f"search-seed{seed}"
        result = search_once(["--space", args.space, "--parent", str(parent), "--data", str(small), "--epochs",
                              str(args.epochs), "--max_kib", str(args.max_kib), "--seed", str(seed),
                              "--cache_dir", str(out / "cache"),
                              *(["--reward_weights", args.reward_weights] if args.reward_weights else [])], run)
        target, parent_bytes = result["target"], result["parent_bytes"]
        command = shlex.split(result["retrain_command"])[2:]
        teaches_only = "--init" in command  # --init random: the parent teaches but cannot seed these layers
        printed = "--parent --init random --distill" if teaches_only else "--parent --distill"
        alone = without(command, "--parent", "--init", "--distill")  # no parent, the printed schedule
        ways = [("from scratch (no parent)", "scratch", without(alone, *SCHEDULE)),
                ("from scratch, --max_epochs 100 --keep last", "scratch100", alone),
                *([] if teaches_only else
                  [("--parent (warm start only)", "warm", without(command, "--distill", *SCHEDULE))]),
                (f"{printed}, 30 epochs, best validation epoch (printed before)", "printed30",
                 without(command, *SCHEDULE)),
                (f"{printed} --max_epochs 100 --keep last (printed)", "printed", command),
                (f"{printed} --max_epochs 100 --keep last --distill_features 0.1", "features",
                 [*command, "--distill_features", "0.1"]),
                ("no parent, the parent's 8,000 images (ceiling)", "ceiling",
                 [*without(alone, "--data", *SCHEDULE), "--data", args.data])]
        for label, name, cmd in ways:
            r = retrain(cmd, out / f"seed{seed}-{name}")
            way = by_way.setdefault(label, {"test": [], "bytes": []})
            way["test"].append(r["test"])
            test_by_name.setdefault(name, []).append(r["test"])
            way["bytes"].append(r["bytes"] / result["parent_bytes"])
            rows.append(f"| {seed} | `{result['best_arch']}` | {label} | {r['test']:.4f} | {r['bytes']:,} | "
                        f"{r['bytes'] / result['parent_bytes']:.3f} | {r['kib']:.2f} | "
                        f"{'yes' if r['test'] >= parent_acc else 'no'} |")
            log(rows[-1])
    seeds = len(args.seeds.split(","))
    weights = f" --reward_weights {args.reward_weights}" if args.reward_weights else ""
    means = [f"| {label} | {interval(v['test'])} | {interval(v['bytes'], '.3f')} | "
             f"{np.mean(v['test']) - parent_acc:+.4f} | {sum(t >= parent_acc for t in v['test'])} / {seeds} |"
             for label, v in by_way.items()]
    section = "parent-knowledge" if args.space == "mlp" else f"parent-knowledge-{args.space}"
    section += "-conv-parent" if args.parent_kind == "conv" else ""
    section += "-weights" if args.reward_weights else ""  # a search with other weights: a section of its own
    kind = "--parent_kind conv " if args.parent_kind == "conv" else ""
    described = (f"a float conv network `{CONV_PARENT}` that `train_arc.py` trained (seed 0, its defaults) on 7,200 of "
                 f"the 8,000 training images of mnist-10k (800 validate)" if args.parent_kind == "conv" else
                 "a float 784-256-256-10 MLP (1,050 KiB) trained on all 8,000 training images of mnist-10k")
    scratch, printed_mean = np.mean(test_by_name["scratch"]), np.mean(test_by_name["printed"])
    scratch100 = np.mean(test_by_name["scratch100"])
    verdict = (f"On the mean the printed command {'gains' if printed_mean > scratch else 'loses'} "
               f"{abs(printed_mean - scratch) * 100:.2f} points against retraining from scratch with train_arc's "
               f"defaults, and {'gains' if printed_mean > scratch100 else 'loses'} "
               f"{abs(printed_mean - scratch100) * 100:.2f} against the same 100-epoch schedule without the parent.")
    how = ("warm-started from the parent and distilled from it" if args.space == "mlp" else
           "distilled from the parent from random weights, as train_arc warm-starts from Dense/ReLU stacks only")
    write_section(section, f"""## A parent that knows more than the training split ({args.space} space{", a conv parent" if kind else ""}{", searched with" + weights if weights else ""})

`python bench/bench_parent.py --space {args.space} {kind}--small {args.small} --epochs {args.epochs} --seeds {args.seeds} --max_kib {args.max_kib:g}{weights}`

The user's parent: {described},
**{parent_acc:.4f} test accuracy**. The user's data: only the first {args.small} of those images (10% for
validation) and the same 2,000 test images. The search: `search_arc_mnist.py --space {args.space} --parent parent.keras
--data small.npz --max_kib {args.max_kib:g} --epochs {args.epochs}{weights}` (else defaults); then the `train_arc.py` command it
printed ({how}, for 100 epochs, keeping the last), unchanged, and variants of it on the same architecture. Bytes: the deployment target's
({target}) predicted model.tflite, against the parent's {parent_bytes:,} on the same target; KiB: larq's
theoretical count. Retraining shifts the digits (`--augment`, the default).

| seed | winner | retraining | test acc | bytes | bytes / parent | theoretical KiB | >= parent |
|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

Means over the {seeds} seed(s), with 95% intervals (t distribution); the test split's own sampling error is about
0.5 points at this accuracy (2,000 images).

| retraining | test acc | bytes / parent | mean - parent | seeds >= parent |
|---|---|---|---|---|
{chr(10).join(means)}

{verdict} The ceiling row trains the same winner without a parent on every image the parent learned from (7,200
of its 8,000 train, 800 validate): what the architecture reaches when it sees all the parent's data.
""")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
