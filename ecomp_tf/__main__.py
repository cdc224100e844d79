"""``python -m ecomp_tf <n_runs> <experiment_name>``: run EComp n times, save each run, print a summary.

Each run ``i`` uses seed ``--seed + i`` and writes ``run_<i>.json``, ``run_<i>.keras`` and ``run_<i>.png``
to ``<output_dir>/<experiment_name>/``; ``summary.json`` there aggregates the runs. Sizes are the deployment
target's predicted bytes (``--target``; the improved mode's compression term too).
"""
from __future__ import annotations

import argparse
import ast
import json
import re
import sys
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ecomp_tf.config import MODES, Configs
from qnas.checkpoints import folder_write_problem
from qnas.errors import UserInputError
from qnas.parent_flags import add_parent_flags, emb_layer_names
from qnas.progress import Console
from qnas.validation import DataNeeds, check_num_classes, check_seed

if TYPE_CHECKING:
    from qnas.targets.base import Target

# the flags that set a Configs field directly; every field can also be set with --set KEY=VALUE
FLAG_FOR = {"POP_SIZE": "--pop_size", "MUTATION_RATE": "--mutation_rate", "EPOCHS": "--epochs",
            "GENERATIONS": "--generations", "LOSS_WEIGHTS": "--loss_weights", "FINAL_BATCHES": "--final_batches",
            "TYPES": "--types"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ecomp_tf", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("n_runs", type=int, help="how many runs (seeds --seed, --seed + 1, ...)")
    p.add_argument("experiment_name", help="results go to <output_dir>/<experiment_name>/")
    p.add_argument("--mode", default="improved", choices=MODES,
                   help="faithful: the reference EComp; improved: ours (default %(default)s)")
    p.add_argument("--dataset", default="mnist", help="mnist or fashion_mnist, downloaded once (default %(default)s)")
    p.add_argument("--data", help="local .npz (Keras layout) or folder of IDX files; replaces --dataset")
    p.add_argument("--num_classes", type=int, metavar="K",
                   help="class count; labels must be 0..K-1 (default: the largest label + 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first run (default %(default)s)")
    p.add_argument("--parent_seed", type=int, default=0, help="seed of the cached float parent (default %(default)s)")
    p.add_argument("--output_dir", default="runs/ecomp", help="where experiment folders go (default %(default)s)")
    p.add_argument("--cache_dir", default="cache", help="where the float parent is cached (default %(default)s)")
    p.add_argument("--target", metavar="NAME",
                   help="deployment target whose predicted file size is every size printed and saved, and the "
                        "improved mode's compression term (the faithful mode keeps the reference's width ratio): "
                        "lce, tflite_int8 or bits (the theoretical count) (default: the best installed; printed)")
    add_parent_flags(p, "compress YOUR trained Dense/ReLU model instead of the cached float parent")
    p.add_argument("--pop_size", type=int, help="POP_SIZE (default 100)")
    p.add_argument("--mutation_rate", type=float, help="MUTATION_RATE (default 0.01)")
    p.add_argument("--epochs", type=float, help="EPOCHS: passes over the training subset, a generation per batch")
    p.add_argument("--generations", type=int, help="GENERATIONS: a fixed count instead of --epochs")
    p.add_argument("--loss_weights", help="LOSS_WEIGHTS 'w_acc,w_sim,w_comp' (faithful 0,2,1; improved 1,2,1)")
    p.add_argument("--final_batches", type=int, help="FINAL_BATCHES: batches for the final ranking (default all)")
    p.add_argument("--types", help="TYPES: layer type codes the improved mode may pick, e.g. '0,4,5'")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any other Configs field, e.g. --set ELITES=4 --set SELECTION=softmax (repeatable)")
    return p


def configs_from_args(args: argparse.Namespace) -> Configs:
    """The mode's preset with the flags applied (unknown keys and bad values raise UserInputError)."""
    changes: dict[str, Any] = {
        "POP_SIZE": args.pop_size, "MUTATION_RATE": args.mutation_rate, "EPOCHS": args.epochs,
        "GENERATIONS": args.generations, "FINAL_BATCHES": args.final_batches,
        "LOSS_WEIGHTS": _numbers(args.loss_weights, "--loss_weights", float, 3) if args.loss_weights is not None else None,
        "TYPES": _numbers(args.types, "--types", int) if args.types is not None else None,
    }
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise UserInputError(f"--set expects KEY=VALUE, got {item!r}")
        changes[key.strip().upper()] = _literal(value.strip())
    try:
        return Configs.for_mode(args.mode, **changes)
    except UserInputError as err:
        raise UserInputError(with_flag_names(str(err))) from None


def with_flag_names(message: str) -> str:
    """A Configs message with the flags that set the fields it names (``POP_SIZE`` -> ``--pop_size``)."""
    named = [f.name for f in fields(Configs) if re.search(rf"\b{f.name}\b", message)]
    if not named or message.startswith("unknown EComp settings"):
        return message
    ways = [f"{FLAG_FOR[k]} or --set {k}=..." if k in FLAG_FOR else f"--set {k}=..." for k in named]
    return f"{message} (set with {'; '.join(ways)})"


def data_needs(configs: Configs) -> DataNeeds:
    """What EComp needs of the data: a batch of training images, and a validation batch for a final pick there."""
    batch = configs.BATCH_SIZE
    if configs.FINAL_SPLIT != "val":
        return DataNeeds(batch_size=batch, batch_flag="--set BATCH_SIZE={n}")
    return DataNeeds(batch_size=batch, batch_flag="--set BATCH_SIZE={n}", min_val=batch,
                     min_val_reason=f"the final ranking on it (FINAL_SPLIT=val) needs one batch of BATCH_SIZE={batch} "
                                    f"(lower it with --set BATCH_SIZE=N, or rank on training batches with "
                                    f"--set FINAL_SPLIT=train)")


def _numbers(text: str, flag: str, kind: type, count: int | None = None) -> tuple:
    try:
        values = tuple(kind(v) for v in text.replace(" ", ",").split(",") if v)
    except ValueError:
        raise UserInputError(f"{flag} expects comma-separated numbers, got {text!r}") from None
    if count is not None and len(values) != count:
        raise UserInputError(f"{flag} expects {count} numbers, got {len(values)} in {text!r}")
    return values


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


class ProgressPrinter:
    """EComp's generation line, through the shared console (in place on a terminal, about every 10% in a file)."""

    def __init__(self, label: str, console: Console | None = None) -> None:
        self.label, self.console = label, console or Console()

    def __call__(self, gen: int, total: int, summary: dict[str, dict[str, float]]) -> None:
        self.console.update(f"{self.label} gen {gen}/{total}  fitness avg {summary['fitness']['avg']:.3f} "
                            f"best {summary['fitness']['best']:.3f}  acc best {summary['accuracy']['best']:.3f}  "
                            f"sim best {summary['similarity']['best']:.3f}  "
                            f"size best {summary['size_ratio']['best']:.3f}", gen, total)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.n_runs < 1:
            raise UserInputError(f"n_runs must be at least 1, got {args.n_runs}")
        if not args.experiment_name.strip() or Path(args.experiment_name).name != args.experiment_name:
            raise UserInputError(f"experiment_name must be a plain folder name, got {args.experiment_name!r}")
        check_seed(args.seed)
        check_seed(args.seed + args.n_runs - 1, f"--seed + n_runs - 1 (the last run's seed, {args.seed} + "
                                                f"{args.n_runs} - 1)")
        check_seed(args.parent_seed, "--parent_seed")
        check_num_classes(args.num_classes)
        configs = configs_from_args(args)
        from qnas.targets.deploy import resolve_target  # loads TensorFlow: after the cheap checks

        target = resolve_target(args.target)
        folder = Path(args.output_dir) / args.experiment_name
        for where, flag in ((folder, "--output_dir"), *(() if args.parent else ((Path(args.cache_dir), "--cache_dir"),))):
            problem = folder_write_problem(where)
            if problem:
                raise UserInputError(f"cannot write to {flag} {where}: {problem}")
        return run(args, configs, target)
    except UserInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace, configs: Configs, target: Target) -> int:
    # TensorFlow loads here, after the flags are parsed, so that --help and flag errors are instant
    from ecomp_tf.evolution import run_ecomp
    from ecomp_tf.results import save_run, summarize
    from qnas.data import load_dataset
    from qnas.models import block_index
    from qnas.records import write_json_atomic
    from qnas.spaces import get_space
    from qnas.user_parent import resolve_parent

    compression = ("the fitness's compression term too" if configs.COMPRESSION == "size"
                   else f"the fitness's compression term stays the {configs.COMPRESSION} ratio")
    print(f"target: {target.name} ({target.description}); sizes are its predicted bytes, {compression}", flush=True)
    data = load_dataset(args.dataset, args.data, num_classes=args.num_classes, needs=data_needs(configs))
    print(data.describe(), flush=True)
    parent = resolve_parent(get_space("mlp"), data, args.parent, emb_layer_names(args.emb_layers), args.parent_layout,
                            in_space=True, seed=args.parent_seed, cache_dir=args.cache_dir,
                            log=lambda msg: print(msg, flush=True))
    if args.parent:
        configs = configs.with_changes(EMB_LAYERS=tuple(block_index(name) for name in parent.embedding_layers))
    folder = Path(args.output_dir) / args.experiment_name
    payloads = []
    for i in range(args.n_runs):
        seed = args.seed + i
        result = run_ecomp(parent, data, configs, seed=seed, progress=ProgressPrinter(f"[{args.mode} run {i}]"),
                           target=target)
        paths = save_run(result, folder, args.experiment_name, i, data.name)
        payloads.append(json.loads(paths["json"].read_text()))
        print(f"run {i} (seed {seed}): {result.best.arch.readable()}  test accuracy {result.test_accuracy:.4f}  "
              f"{result.bytes / 1024:.2f} KiB on {target.name} = {result.size_ratio:.4f} of the parent's  "
              f"({result.seconds['total']:.0f} s) -> {paths['json']}", flush=True)
    summary = summarize(payloads)
    write_json_atomic(folder / "summary.json", {"mode": args.mode, "configs": configs.as_dict(), **summary})
    acc, ratio, kib = summary["test_accuracy"], summary["size_ratio"], summary["kib"]
    print(f"{args.experiment_name}: {summary['runs']} runs, test accuracy {acc['mean']:.4f} +- {acc['std']:.4f} "
          f"(min {acc['min']:.4f}), {kib['mean']:.2f} KiB on {target.name} = {ratio['mean']:.4f} +- {ratio['std']:.4f} "
          f"of the parent's, parent {parent.test_accuracy:.4f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
