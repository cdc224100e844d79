"""What ``search_arc_mnist.py`` does, importable: check the flags, load data and parent, search, report."""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from enas.report import report
from enas.search import Search, SearchConfig, write_summary
from enas.strategies import STRATEGIES
from qnas.augment import standardize_colour
from qnas.data import load_dataset
from qnas.errors import UserInputError
from qnas.objective import ObjectiveWeights
from qnas.parent import data_fingerprint
from qnas.parent_flags import emb_layer_names
from qnas.progress import Console
from qnas.seeding import seed_everything
from qnas.space import Space
from qnas.spaces import get_space
from qnas.user_parent import hidden_linear_layers, resolve_parent
from quantize.types import get_layer_type


def space_from_args(args: argparse.Namespace, parent_depth: int | None = None) -> Space:
    """The search space the flags ask for; its depth follows a user's parent unless --num_layers is set."""
    space = get_space(args.space)
    widths = types = None
    if args.widths:
        try:
            widths = tuple(int(w) for w in args.widths.split(",") if w.strip())
        except ValueError:
            raise UserInputError(f"--widths {args.widths!r}: expected comma-separated integers, e.g. 16,64,256") from None
    if args.types:
        try:
            types = tuple(get_layer_type(t.strip()).code for t in args.types.split(",") if t.strip())
        except ValueError as err:
            raise UserInputError(f"--types {args.types!r}: {err}") from None
    return space.with_options(num_layers=args.num_layers or parent_depth, widths=widths, types=types)


CLI_DEFAULTS = {"epochs": 20, "max_minutes": None, "max_kib": None, "lr": 2e-3, "reward_weights": "1,0.05,0.5"}  # unless the space has its own


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
    if args.max_minutes is not None and args.max_minutes <= 0:
        raise UserInputError(f"--max_minutes must be positive, got {args.max_minutes}")
    if args.max_kib is not None and args.max_kib <= 0:
        raise UserInputError(f"--max_kib must be positive, got {args.max_kib}")
    if args.lr <= 0:
        raise UserInputError(f"--lr must be positive, got {args.lr}")
    names = [n.strip() for n in args.strategy.split(",") if n.strip()]
    unknown = [n for n in names if n not in STRATEGIES]
    if unknown or not names or len(set(names)) != len(names):
        raise UserInputError(f"--strategy {args.strategy!r}: expected one or more of {', '.join(STRATEGIES)}, "
                             f"comma-separated, each once")


def retrain_command(arch_string: str, args: argparse.Namespace) -> str:
    """The exact command that retrains the winner to convergence."""
    parts = ["python", "train_arc.py", "-fixed_arc", arch_string, "--space", args.space]
    parts += ["--data", args.data] if args.data else ["--dataset", args.dataset]
    parts += ["--seed", str(args.seed)]
    return " ".join(shlex.quote(p) for p in parts)


def run_from_args(args: argparse.Namespace, argv: list[str]) -> int:
    console = Console()
    _log = console.line
    get_space(args.space)  # an unknown space is refused before its defaults are looked up
    apply_space_defaults(args)
    check_args(args)
    space_from_args(args)  # refuse bad space flags before loading anything
    config = SearchConfig(strategy=args.strategy, epochs=args.epochs, batch_size=args.batch_size,
                          learning_rate=args.lr, child_sampling=args.child_sampling,
                          controller_steps=args.controller_steps, controller_batch=args.controller_batch,
                          reward=ObjectiveWeights.parse(args.reward_weights), max_kib=args.max_kib,
                          max_minutes=args.max_minutes, seed=args.seed)
    output_dir = Path(args.output_dir or f"runs/search/{args.space}-{args.strategy}-seed{args.seed}")
    _check_output_dir(output_dir, args.resume)
    seed_everything(args.seed)
    data, standardisation = standardize_colour(load_dataset(args.dataset, args.data, seed=args.seed))
    _log(f"data: {data.describe()}" + (", standardised per channel" if standardisation else ""))
    parent = resolve_parent(get_space(args.space), data, args.parent, emb_layer_names(args.emb_layers),
                            args.parent_layout, seed=args.seed, cache_dir=args.cache_dir, log=_log)
    space = space_from_args(args, parent_depth=hidden_depth(parent.model) if args.parent else None)
    _log(f"parent: test accuracy {parent.test_accuracy:.4f}, {parent.bits / 8192:.1f} KiB ({parent.source})")
    _log(f"space: {space.describe()}; strategy {args.strategy}; reward weights {config.reward}; seed {args.seed}")
    _save_or_check_settings(output_dir, {**config.to_dict(), "run": {
        "space": space.name, **space.settings(), "data": data.name, "data_fingerprint": data_fingerprint(data), "parent": parent.source,
        "emb_layers": parent.embedding_layers}}, args.resume)
    search = Search(space, data, parent, config, output_dir, log=_log, progress=console.status)
    if args.resume and not search.restore():
        _log(f"no checkpoint in {output_dir}: starting from the beginning")
    result = search.run()
    command = retrain_command(result.best.to_string(), args)
    t = result.best_terms
    _log("=" * 51)
    lines = result.best.display_lines()
    if len(lines) == 1:
        _log(f"best architecture: {result.best.to_string()}   ({result.best.readable()})")
    else:  # a cell architecture: each cell on its own line, as the reference printed them
        _log("best architecture:")
        for line in lines:
            _log(line)
    _log(f"shared-weight val_acc={t['acc']:.4f} size={t['kib']:.2f}KiB ratio={t['size_ratio']:.4f} "
         f"sim={t['sim']:.4f} reward={t['reward']:.4f} minutes={result.minutes:.2f}")
    _log(f"retrain it with:\n{command}")
    if args.plot:
        png, front = report(output_dir)
        _log(f"accuracy vs size of {len(front)} Pareto-optimal architectures drawn in {png}")
    write_summary(search, result, command, {"data": data.name, "input_standardisation": standardisation, "parent": {
        "source": parent.source, "test_accuracy": parent.test_accuracy, "bits": parent.bits,
        "embedding_layers": parent.embedding_layers}})
    return 0


def hidden_depth(model) -> int:
    """Hidden Dense/Conv2D layers of a user's parent (its classifier excluded): the search's default depth."""
    return max(1, len(hidden_linear_layers(model)))


def _check_output_dir(output_dir: Path, resume: bool) -> None:
    """Refuse to overwrite a run, and an output folder we cannot write, before loading anything."""
    if (output_dir / "config.json").exists() and not resume:
        raise UserInputError(f"{output_dir} already holds a search; pass --resume to continue it, "
                             f"or choose another --output_dir")
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        probe = output_dir / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise UserInputError(f"cannot write to --output_dir {output_dir}: {err.strerror}") from None


# settings a resumed run may change: a time budget can be extended
RESUMABLE_CHANGES = {"max_minutes"}


def _save_or_check_settings(output_dir: Path, settings: dict, resume: bool) -> None:
    """``config.json``: written once the data and parent loaded; on --resume, everything but a budget must match."""
    config_path = output_dir / "config.json"
    if resume and config_path.exists():
        saved = json.loads(config_path.read_text())
        changed = sorted(k for k in set(saved) | set(settings)
                         if k not in RESUMABLE_CHANGES and saved.get(k) != settings.get(k))
        changed += sorted(f"run.{k}" for k in settings["run"] if saved.get("run", {}).get(k) != settings["run"][k])
        changed = [k for k in changed if k != "run"]
        if changed:
            raise UserInputError(f"--resume with different settings ({', '.join(changed)}) than the run in "
                                 f"{output_dir}; repeat the original flags")
    config_path.write_text(json.dumps(settings, indent=2) + "\n")
    print(f"output: {output_dir}", file=sys.stdout, flush=True)
