"""What ``search_arc_mnist.py`` does, importable: check the flags, load data and parent, search, report."""
from __future__ import annotations

import argparse
import math
import shlex
from pathlib import Path

from enas.report import report
from enas.search import Log, Search, SearchConfig, size_text, write_summary
from enas.strategies import STRATEGIES
from qnas.augment import standardize_colour
from qnas.checkpoints import folder_write_problem
from qnas.data import Dataset, load_dataset
from qnas.distribute import make_distribution
from qnas.distribute_flags import check_distribute_flags
from qnas.errors import UserInputError
from qnas.objective import ObjectiveWeights
from qnas.parent import Parent, data_fingerprint
from qnas.parent_flags import emb_layer_names
from qnas.progress import Console
from qnas.run_folder import RunFolder
from qnas.seeding import seed_everything
from qnas.space import Space
from qnas.spaces import get_space
from qnas.targets.base import Target
from qnas.targets.deploy import resolve_target
from qnas.targets.latency import LatencyTable
from qnas.targets.pricing import LatencyPricer, latency_problem
from qnas.user_parent import as_space_model, parent_depth_in, resolve_parent
from qnas.validation import (
    DataNeeds,
    check_image_side,
    check_num_classes,
    check_positive_number,
    check_seed,
    conv_min_side,
    probe_needs,
)
from quantize.types import get_layer_type


def space_from_args(args: argparse.Namespace, parent_depth: int | None = None,
                    target_types: tuple[int, ...] | None = None) -> Space:
    """The search space the flags ask for; its depth follows a user's parent unless --num_layers is set, and its
    types are those worth searching on the deployment target unless --types is set."""
    space = get_space(args.space)
    widths = types = None
    if args.widths is not None:  # an empty value is refused below, not taken for the default
        try:
            widths = tuple(int(w) for w in args.widths.split(",") if w.strip())
        except ValueError:
            raise UserInputError(f"--widths {args.widths!r}: expected comma-separated integers, e.g. 16,64,256") from None
    if args.types is not None:
        try:
            types = tuple(get_layer_type(t.strip()).code for t in args.types.split(",") if t.strip())
        except ValueError as err:
            raise UserInputError(f"--types {args.types!r}: {err}") from None
    if types is None and target_types:  # the space's types the target runs well, else the target's own
        types = tuple(t for t in space.types if t in target_types) or tuple(target_types)
    return space.with_options(num_layers=args.num_layers or parent_depth, widths=widths, types=types)


# unless the space has its own (the controller's two knobs: BENCHMARKS.md, "controller knobs", on the conv space;
# half the epochs of warm-up and 15 updates an epoch: "strategies")
CLI_DEFAULTS = {"epochs": 20, "max_minutes": None, "max_kib": None, "lr": 2e-3, "reward_weights": "1,0.05,0.5",
                "controller_lr": 1e-2, "tanh_constant": 5.0, "controller_steps": 15, "finalist_steps": 200}


def apply_space_defaults(args: argparse.Namespace) -> None:
    """Fill the flags left unset (None) with the space's search defaults, else the CLI's."""
    defaults = {**CLI_DEFAULTS, **get_space(args.space).search_defaults()}
    for flag, value in defaults.items():
        if getattr(args, flag) is None:
            setattr(args, flag, value)


def check_args(args: argparse.Namespace) -> None:
    for flag in ("epochs", "batch_size", "controller_steps", "controller_batch"):
        if getattr(args, flag) < 1:
            raise UserInputError(f"--{flag} must be a positive integer, got {getattr(args, flag)}")
    if args.finalist_steps < 0:
        raise UserInputError(f"--finalist_steps must be 0 (no training alone) or a positive integer, got "
                             f"{args.finalist_steps}")
    if args.child_steps < 0:
        raise UserInputError(f"--child_steps must be 0 (one pass per epoch) or a positive integer, got {args.child_steps}")
    if args.warmup_epochs is not None and args.warmup_epochs < 0:
        raise UserInputError(f"--warmup_epochs must be 0 or more, got {args.warmup_epochs}")
    for flag in ("controller_lr", "tanh_constant", "distill_temperature", "controller_temperature"):
        check_positive_number(getattr(args, flag), f"--{flag}")
    for flag in ("entropy_weight", "feature_distill"):
        if not (getattr(args, flag) >= 0 and math.isfinite(getattr(args, flag))):
            raise UserInputError(f"--{flag} must be 0 or a positive number, got {getattr(args, flag)}")
    if not 0 <= args.distill <= 1:
        raise UserInputError(f"--distill must be between 0 and 1, got {args.distill}")
    if not 0 <= args.baseline_decay <= 1:
        raise UserInputError(f"--baseline_decay must be between 0 and 1, got {args.baseline_decay}")
    if args.population_size < 2 or not 1 <= args.sample_size <= args.population_size:
        raise UserInputError(f"--population_size must be at least 2 and --sample_size between 1 and it, got "
                             f"{args.population_size} and {args.sample_size}")
    if args.retrain_epochs is not None and args.retrain_epochs < 1:
        raise UserInputError(f"--retrain_epochs must be a positive integer, got {args.retrain_epochs}")
    if args.max_minutes is not None and not args.max_minutes > 0:
        raise UserInputError(f"--max_minutes must be positive, got {args.max_minutes}")
    if args.max_kib is not None and not (args.max_kib > 0 and math.isfinite(args.max_kib)):
        raise UserInputError(f"--max_kib must be positive, got {args.max_kib}")
    if args.max_ms is not None and not (args.max_ms > 0 and math.isfinite(args.max_ms)):
        raise UserInputError(f"--max_ms must be a positive number of milliseconds, got {args.max_ms}")
    if args.num_layers is not None and not 1 <= args.num_layers <= 16:
        raise UserInputError(f"--num_layers must be between 1 and 16, got {args.num_layers}")
    check_positive_number(args.lr, "--lr")
    check_distribute_flags(args.distribute, args.replicas)
    if args.distribute == "multi_worker" and latency_flags(args):
        raise UserInputError(f"{' and '.join(latency_flags(args))} cannot be used with --distribute multi_worker: each "
                             f"worker would measure its own latency table, and workers that score differently choose "
                             f"differently")
    if args.distribute == "multi_worker" and args.max_minutes is not None:
        raise UserInputError("--max_minutes cannot be used with --distribute multi_worker: each worker's clock would "
                             "decide alone, and workers that stop at different epochs wait for each other forever; "
                             "bound the run with --epochs")
    if args.distribute != "none" and args.supernet_step == "eager":
        raise UserInputError("--distribute runs the compiled shared-weight step on every replica; drop --supernet_step "
                             "eager (auto compiles when distributed)")
    check_seed(args.seed)
    check_num_classes(args.num_classes)
    if get_space(args.space).family != "chain":
        chain_only = [flag for flag, on in (("--sandwich", args.sandwich), ("--distill", args.distill),
                                            ("--feature_distill", args.feature_distill),
                                            ("--distribute", args.distribute != "none")) if on]
        if chain_only:
            raise UserInputError(f"{', '.join(chain_only)} work on the chain spaces (mlp, conv) only; the {args.space} "
                                 f"supernet trains one child per step in one process")
    names = [n.strip() for n in args.strategy.split(",") if n.strip()]
    unknown = [n for n in names if n not in STRATEGIES]
    if unknown or not names or len(set(names)) != len(names):
        raise UserInputError(f"--strategy {args.strategy!r}: expected one or more of {', '.join(STRATEGIES)}, "
                             f"comma-separated, each once")


def latency_flags(args: argparse.Namespace) -> list[str]:
    """The flags that put the predicted latency into the objective (none: the latency table is never built)."""
    weights = ObjectiveWeights.parse(args.reward_weights)
    return [flag for flag, on in (("--max_ms", args.max_ms is not None),
                                  ("a latency weight in --reward_weights", weights.lat > 0)) if on]


def check_latency(args: argparse.Namespace, target: Target, space: Space) -> None:
    """Refuse latency flags where the target has no per-layer latency table for the space's networks."""
    used = latency_flags(args)
    problem = latency_problem(target, space) if used else None
    if problem:
        raise UserInputError(f"{' and '.join(used)}: {problem}")


# A student that a better parent teaches keeps gaining long after 30 epochs, and the user's validation split (a
# tenth of a small one) cannot tell its epochs apart: the printed command trains it 100 epochs and keeps the last
# (measured in bench_parent.py's rows; BENCHMARKS.md, "parent-knowledge").
TAUGHT_EPOCHS = 100


def retrain_command(arch_string: str, args: argparse.Namespace, warm_start: bool = True) -> str:
    """The exact command that retrains the winner to convergence, keeping the knowledge of the user's parent.

    A ``--parent`` the user gave teaches the retraining (``--distill``) and warm-starts it where it can
    (``warm_start``: a Dense/ReLU stack in the mlp space; else ``--init random``). The cached float parent does
    neither: it learned from the same training split, so it teaches nothing the labels do not (measured:
    BENCHMARKS.md, "ablation" and "micro").
    """
    parts = ["python", "train_arc.py", "-fixed_arc", arch_string, "--space", args.space]
    parts += ["--data", args.data] if args.data else ["--dataset", args.dataset]
    parts += ["--seed", str(args.seed)]
    if args.target:
        parts += ["--target", args.target]
    if args.num_classes:
        parts += ["--num_classes", str(args.num_classes)]
    epochs = args.retrain_epochs or (TAUGHT_EPOCHS if args.parent else None)
    parts += ["--max_epochs", str(epochs)] if epochs else []
    if args.parent:
        parts += ["--parent", args.parent]
        parts += ["--parent_layout", args.parent_layout] if args.parent_layout != "in_out" else []
        parts += [] if warm_start else ["--init", "random"]
        parts += ["--distill", "--keep", "last"]
    return " ".join(shlex.quote(p) for p in parts)


def parent_warm_starts(args: argparse.Namespace, parent: Parent, space: Space, data: Dataset, log: Log) -> bool:
    """Whether train_arc can warm-start from the user's parent (a Dense/ReLU stack), saying why not."""
    if not args.parent:
        return True
    try:
        as_space_model(parent.model, space, data)
    except UserInputError as err:
        log(f"note: the retrain command learns from your parent (--distill) but starts from random weights: {err}")
        log("note: a parent less accurate than this architecture trained on your data alone makes it worse; if "
            "unsure, retrain also without --parent, --init and --distill (the same schedule), and keep the higher "
            "validation accuracy of the kept epochs (after 'val' on each run's test-accuracy line; a fair comparison: "
            "neither run trains on the validation images)")
        return False
    return True


# settings a resumed run may change: a time budget can be extended, the step may move to another device, and a
# finished search can rank its finalists again with another --finalist_steps (nothing before the last ranking uses it)
RESUMABLE_CHANGES = {"max_minutes", "supernet_step", "finalist_steps", "finalist_lr"}


def run_from_args(args: argparse.Namespace, argv: list[str]) -> int:
    console = Console()
    get_space(args.space)  # an unknown space is refused before its defaults are looked up
    apply_space_defaults(args)
    check_args(args)
    dist = make_distribution(args.distribute, args.replicas)  # before TensorFlow runs anything
    dist.check_batch(args.batch_size)
    _log, status = dist.quiet(console.line), dist.quiet(console.status)  # the chief reports; non-chiefs stay quiet
    target = resolve_target(args.target)
    planned = space_from_args(args, target_types=target.default_types())  # bad space flags refused before loading
    target.require_space(planned)
    check_latency(args, target, planned)
    config = SearchConfig(strategy=args.strategy, epochs=args.epochs, batch_size=args.batch_size,
                          child_steps=args.child_steps, supernet_step=args.supernet_step,
                          learning_rate=args.lr, child_sampling=args.child_sampling,
                          controller_steps=args.controller_steps, controller_batch=args.controller_batch,
                          warmup_epochs=args.warmup_epochs, controller_lr=args.controller_lr,
                          tanh_constant=args.tanh_constant, controller_temperature=args.controller_temperature,
                          entropy_weight=args.entropy_weight, baseline_decay=args.baseline_decay,
                          population_size=args.population_size, sample_size=args.sample_size,
                          sandwich=args.sandwich, distill=args.distill, distill_temperature=args.distill_temperature,
                          feature_distill=args.feature_distill, finalist_steps=args.finalist_steps,
                          reward=ObjectiveWeights.parse(args.reward_weights), max_kib=args.max_kib, max_ms=args.max_ms,
                          max_minutes=args.max_minutes, seed=args.seed, target=target.name)
    output_dir = Path(args.output_dir or f"runs/search/{args.space}-{args.strategy}-seed{args.seed}")
    folder = RunFolder(dist.worker_folder(output_dir, args.resume), "config.json",
                       stale=("evaluations.jsonl", "state.json"), finished_is_final=False, may_change=RESUMABLE_CHANGES)
    resuming = folder.check(args.resume)
    if not args.parent and folder_write_problem(args.cache_dir):
        raise UserInputError(f"cannot write the float parent to --cache_dir {args.cache_dir}: "
                             f"{folder_write_problem(args.cache_dir)}")
    cache_dir = dist.worker_cache(args.cache_dir)
    seed_everything(args.seed)
    data, standardisation = standardize_colour(load_dataset(args.dataset, args.data, seed=args.seed,
                                                            num_classes=args.num_classes,
                                                            needs=search_needs(args, planned)))
    _log(f"data: {data.describe()}" + (", standardised per channel" if standardisation else ""))
    registered = get_space(args.space)
    parent = resolve_parent(registered, data, args.parent, emb_layer_names(args.emb_layers),
                            args.parent_layout, seed=args.seed, cache_dir=cache_dir, log=_log)
    parent_depth = parent_depth_in(parent.model, getattr(registered, "kind", "")) if args.parent else None
    space = space_from_args(args, parent_depth=parent_depth, target_types=target.default_types())
    if args.parent and space.family == "chain":
        check_image_side(data.input_shape, *_conv_side(space, space.num_layers))
    _log(f"parent: test accuracy {parent.test_accuracy:.4f}, {parent.bits / 8192:.1f} KiB theoretical ({parent.source})")
    _log(f"space: {space.describe()}; strategy {args.strategy}; reward weights {config.reward}; seed {args.seed}")
    folder.claim({**config.to_dict(), "run": {
        "space": space.name, **space.settings(), "data": data.name, "data_fingerprint": data_fingerprint(data),
        "parent": parent.source, "emb_layers": parent.embedding_layers,
        **({"num_classes": args.num_classes} if args.num_classes else {})}},
        resuming, args.resume, _log)
    _log(f"output: {output_dir}")
    if dist.strategy is not None:
        _log(f"shared weights: {dist.describe()}")
    latency = None
    if config.objective.uses_latency:
        table = LatencyTable(target, Path(cache_dir))
        _log(f"latency: predicted by {target.name}'s per-layer table of this machine ({table.path}, "
             f"{len(table.entries)} entries cached); the entries the search needs are measured when first used")
        latency = LatencyPricer(target, space, data.input_shape, data.num_classes, parent, table=table)
        _log(f"latency: {latency.reference} runs in {latency.parent_ms:.4f} ms (predicted)"
             + (f"; budget --max_ms {args.max_ms:g}" if args.max_ms is not None else ""))
    search = Search(space, data, parent, config, folder.path, log=_log, progress=status, distribution=dist.strategy,
                    latency=latency)
    _log(f"target: {target.name} ({target.description}); sizes are its predicted bytes "
         f"(parent {search.size.parent_bytes / 1024:.1f} KiB)")
    if resuming and not search.restore():
        _log(f"no checkpoint in {output_dir}: starting from the beginning")
    dist.check_same(int(search.epoch.numpy()), "the number of epochs done")
    result = search.run()
    if not dist.is_chief:
        print("search: this worker's part is done; the chief wrote the result", flush=True)
        return 0
    command = retrain_command(result.best.to_string(), args, parent_warm_starts(args, parent, space, data, _log))
    t = result.best_terms
    _log("=" * 51)
    lines = result.best.display_lines()
    if len(lines) == 1:
        _log(f"best architecture: {result.best.to_string()}   ({result.best.readable()})")
    else:  # a cell architecture: each cell on its own line, as the reference printed them
        _log("best architecture:")
        for line in lines:
            _log(line)
    scored = (f"after {len(search.final_batches)} minibatches alone from the shared weights" if search.final_batches
              else "shared-weight")
    _log(f"{scored}: val_acc={t['acc']:.4f} {size_text(t)} ratio={t['size_ratio']:.4f} "
         f"sim={t['sim']:.4f} reward={t['reward']:.4f} minutes={result.minutes:.2f}")
    _log(f"retrain it with:\n{command}")
    if latency is not None and latency.table.measured:
        _log(f"latency: {latency.table.measured} table entries measured in this run, cached in {latency.table.path}")
    if args.plot:
        png, front = report(output_dir)
        _log(f"accuracy vs size of {len(front)} Pareto-optimal architectures drawn in {png}")
    write_summary(search, result, command, {"data": data.name, "input_standardisation": standardisation, "parent": {
        "source": parent.source, "test_accuracy": parent.test_accuracy, "bits": parent.bits,
        "embedding_layers": parent.embedding_layers}})
    return 0


def search_needs(args: argparse.Namespace, space: Space) -> DataNeeds:
    """What the search needs of the data: a minibatch, a probe batch, and (conv) pixels for the pooling."""
    if space.family != "chain":  # cells adapt to any image; the built-in float parent is a conv chain and pools
        parent_space = space.parent_space()
        return probe_needs(args.batch_size, *_conv_side(parent_space, len(parent_space.parent_widths)))
    if args.parent and not args.num_layers:
        return probe_needs(args.batch_size)  # the depth follows the parent: the image size is checked once it loads
    sides = [_conv_side(space, space.num_layers)]
    if not args.parent:
        sides.append(_conv_side(space, len(space.parent_widths)))  # the built-in float parent pools too
    return probe_needs(args.batch_size, *max(sides))


def _conv_side(space: Space, depth: int) -> tuple[int, str]:
    """(smallest image side, why) for ``depth`` layers of ``space``: conv layers pool, Dense layers do not."""
    pools = len(space.pool_after(depth))
    return conv_min_side(pools), f"the {space.name} space's {pools} 2x2 max pooling(s)"



