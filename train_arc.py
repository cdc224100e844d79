"""Retrain one architecture to convergence and export it; or several, as parallel jobs, and compare them.

    python train_arc.py -fixed_arc "256 1 128 2" --space mlp --data ../shared/data/mnist-10k.npz
    python train_arc.py --from_search runs/search/conv-controller-seed0 --top_k 3 --jobs 2
    python train_arc.py -fixed_arc "0 2 1 4 1 3 0 1 1 0 1 0 1 2 0 4 0 0 0 1 1 3 1 4 0 1 1 1 1 2 1 4 3 2 0 2 1 1 0 3" \
        --space micro --data ../shared/data/cifar10-12k.npz

Prints larq's summary, one line per epoch, then test accuracy, size (KiB and ratio to the float
parent), MACs, parameters and wall time. The output folder gets model.keras, result.json,
TensorBoard logs, checkpoints and model.tflite for the deployment target (--target), with its real
bytes beside the predicted ones, its agreement with Keras on the test images and its latency.
Ctrl-C keeps the last epoch's checkpoint; the same command plus --resume continues the run.
Several architectures (several -fixed_arc values, or a search's best --top_k) each get their own
folder and seed and end in one table: test accuracy, size, file bytes, latency and wall time.
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
from typing import TYPE_CHECKING

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # ERROR lines too: TF prints harmless ones each epoch

from qnas.distribute_flags import add_distribute_flags
from qnas.parent_flags import add_parent_flags

if TYPE_CHECKING:
    from qnas.trainer import TrainConfig

SPACE_NAMES = ("mlp", "conv", "micro")  # qnas.spaces' registry; listed here so --help needs no TensorFlow
TARGET_NAMES = ("lce", "tflite_int8", "bits")  # qnas.targets' registry, likewise


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python train_arc.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("-fixed_arc", "--fixed_arc", nargs="+", metavar="ARCH",
                      help="architecture string, two integers per layer 'WIDTH TYPE ...' (e.g. '256 1 128 2'; "
                           "types 0=float32 1=binary 2=ternary 3=int2 4=int4 5=int8) or '256:binary 128:ternary'; "
                           "for --space micro, 4 integers per node 'INPUT OP INPUT OP', normal cell then reduction "
                           "cell (ops 0/1 sep 3x3/5x5, 2 avg pool, 3 max pool, 4 identity; 10*TYPE + 0/1: a 3x3/5x5 "
                           "conv of that type, e.g. 10 = binary 3x3); several, each quoted, are retrained as "
                           "independent jobs")
    what.add_argument("--from_search", metavar="RESULT",
                      help="retrain the best --top_k candidates of a search: its result.json or output folder; "
                           "--space, the data and --seed default to the search's")
    parser.add_argument("--top_k", type=int, metavar="K",
                        help="with --from_search: how many of its candidates, best first (default: 3)")
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="with several architectures: train N at a time, each in its own process, with its own "
                             "output folder <output_dir>/<rank>-<arch>-seed<S> and seed (--seed plus rank - 1) "
                             "(default: 1)")
    parser.add_argument("--space", metavar="NAME",
                        help=f"search space the architecture lives in: {' or '.join(SPACE_NAMES)} (default: mlp)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--dataset", metavar="NAME",
                        help="Keras data set to download once: mnist, fashion_mnist or cifar10 (default: mnist)")
    source.add_argument("--data", metavar="PATH",
                        help="local data instead: a Keras-layout .npz (x_train, y_train, x_test, y_test; images "
                             "(N, H, W) or (N, H, W, C)) or a folder of IDX or .npy files. Colour images are "
                             "standardised per channel")
    parser.add_argument("--num_classes", type=int, metavar="K",
                        help="class count; labels must be 0..K-1 (default: the largest label + 1)")
    parser.add_argument("--max_epochs", type=int, default=30,
                        help="epoch budget; the cosine learning-rate decay reaches zero here (default: 30)")
    parser.add_argument("--patience", type=int, default=10,
                        help="stop after this many epochs in a row with validation accuracy below the best so far "
                             "(a tie counts as progress) (default: 10)")
    parser.add_argument("--keep", choices=("best", "last"), default="best",
                        help="which weights the run keeps: 'best', the epoch with the best validation accuracy "
                             "(and early stopping after --patience epochs), or 'last', the end of the whole "
                             "learning-rate schedule: better when the validation split is too small to tell epochs "
                             "apart (default: best)")
    parser.add_argument("--batch_size", type=int, default=100, help="minibatch size (default: 100)")
    parser.add_argument("--lr", type=float, default=3e-3,
                        help="peak learning rate of Adam, after a one-epoch warm-up (none when --max_epochs is 1) "
                             "(default: 3e-3)")
    parser.add_argument("--seed", type=int,
                        help="seed for initialisation, validation split and data order (default: 0)")
    parser.add_argument("--init", choices=("random", "parent"),
                        help="'random' or 'parent': start from the float parent of the space pruned to the "
                             "architecture's widths (trained once and cached in --cache_dir) (default: parent with "
                             "--parent, else random)")
    add_parent_flags(parser, "YOUR trained model instead of the space's float parent: a Dense/ReLU stack warm-starts "
                             "the mlp space; any model teaches with --distill (with --init random: teaches only)",
                     embedding=False)
    parser.add_argument("--distill", type=float, nargs="?", const=0.5, metavar="ALPHA",
                        help="also learn from the parent (--parent, or the space's cached float parent): ALPHA weighs "
                             "its temperature-softened outputs, 1 - ALPHA the labels (--distill alone: 0.5)")
    parser.add_argument("--distill_temperature", type=float, default=4.0,
                        help="temperature of the parent's soft targets (default: 4)")
    parser.add_argument("--distill_features", type=float, default=0.0, metavar="WEIGHT",
                        help="with --distill, also the similarity loss between the architecture's block outputs and "
                             "the parent's, with this weight (default: 0, off)")
    parser.add_argument("--cache_dir", default="cache", help="where the float parent is cached (default: cache)")
    parser.add_argument("--output_dir", metavar="DIR",
                        help="output folder (default: runs/train_arc/<space>-<arch>-<data>-seed<S>; with several "
                             "architectures, the folder of their folders: runs/finalists/<search or space-data-seed>)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the interrupted run in the output folder from its last checkpoint")
    parser.add_argument("--target", metavar="NAME",
                        help=f"deployment target of model.tflite: {', '.join(TARGET_NAMES)} (lce: Larq Compute Engine, "
                             "bit-packed binary layers; tflite_int8: full-integer TFLite, as TFLite Micro runs it; "
                             "bits: the theoretical count, no file) (default: the best installed, lce else tflite_int8; "
                             "printed at the start)")
    parser.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                        help="random shifts of the training images by up to an eighth of their size, and horizontal "
                             "flips of colour images (never of digits) (default: on; --no-augment turns it off)")
    parser.add_argument("--no_tflite", dest="tflite", action="store_false",
                        help="skip the export (the target's predicted bytes are still recorded)")
    add_distribute_flags(parser, "the retrained model")
    return parser


def resume_command(argv: list[str]) -> str:
    """The command that continues this run: the same arguments plus --resume."""
    args = [a for a in argv if a != "--resume"]
    return shlex.join(["python", "train_arc.py", *args, "--resume"])


def config_from_args(args: argparse.Namespace, arch: str) -> TrainConfig:
    """The ``TrainConfig`` the flags ask for, for architecture ``arch``."""
    from qnas.distill import DistillConfig
    from qnas.trainer import TrainConfig

    return TrainConfig(
        arch=arch, space=args.space or "mlp", dataset=args.dataset or "mnist", data_path=args.data,
        max_epochs=args.max_epochs, batch_size=args.batch_size, seed=0 if args.seed is None else args.seed,
        output_dir=args.output_dir, resume=args.resume, init=args.init, lr=args.lr, patience=args.patience,
        cache_dir=args.cache_dir, tflite=args.tflite, parent=args.parent, parent_layout=args.parent_layout,
        num_classes=args.num_classes, distribute=args.distribute, replicas=args.replicas, target=args.target,
        augment=args.augment, keep=args.keep,
        distill=None if args.distill is None else DistillConfig(args.distill, args.distill_temperature,
                                                                args.distill_features),
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    from qnas.errors import UserInputError
    from qnas.trainer import TrainingInterrupted, format_result, train_architecture

    command = shlex.join(["python", "train_arc.py", *argv])
    try:
        if args.from_search is not None or len(args.fixed_arc) > 1 or args.top_k is not None:
            from qnas.finalists import run_from_args

            return run_from_args(args, command, config_from_args)
        result = train_architecture(config_from_args(args, args.fixed_arc[0]), command=command)
    except UserInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except TrainingInterrupted as stop:
        print(f"\n{stop}\nresume with:\n  {resume_command(argv)}", file=sys.stderr, flush=True)
        return 130
    except KeyboardInterrupt:  # before the first epoch started: nothing worth keeping yet
        print(f"\ninterrupted before training started; to start again:\n  {resume_command(argv)}",
              file=sys.stderr, flush=True)
        return 130
    if not result.record:  # a non-chief worker of a multi-worker run: the chief reports
        print("train_arc: this worker's part is done; the chief wrote the result", flush=True)
        return 0
    print(format_result(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
