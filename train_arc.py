"""Retrain one architecture to convergence and export it.

    python train_arc.py -fixed_arc "256 1 128 2" --space mlp --data ../shared/data/mnist-10k.npz
    python train_arc.py -fixed_arc "0 2 1 4 1 3 0 1 1 0 1 0 1 2 0 4 0 0 0 1 1 3 1 4 0 1 1 1 1 2 1 4 3 2 0 2 1 1 0 3" \
        --space micro --data ../shared/data/cifar10-12k.npz

Prints larq's summary, one line per epoch, then test accuracy, size (KiB and ratio to the float
parent), MACs, parameters and wall time. The output folder gets model.keras, result.json,
TensorBoard logs, checkpoints and (with Larq Compute Engine installed) model.tflite.
Ctrl-C keeps the last epoch's checkpoint; the same command plus --resume continues the run.
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from qnas.parent_flags import add_parent_flags

SPACE_NAMES = ("mlp", "conv", "micro")  # qnas.space.SPACES; listed here so --help needs no TensorFlow


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python train_arc.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-fixed_arc", "--fixed_arc", required=True, metavar="ARCH",
                        help="architecture string, two integers per layer 'WIDTH TYPE ...' (e.g. '256 1 128 2'; "
                             "types 0=float32 1=binary 2=ternary 3=int2 4=int4 5=int8) or '256:binary 128:ternary'; "
                             "for --space micro, 4 integers per node 'INPUT OP INPUT OP', normal cell then reduction "
                             "cell (ops 0/1 sep 3x3/5x5, 2 avg pool, 3 max pool, 4 identity; 10*TYPE + 0/1: a 3x3/5x5 "
                             "conv of that type, e.g. 10 = binary 3x3)")
    parser.add_argument("--space", default="mlp", metavar="NAME",
                        help=f"search space the architecture lives in: {' or '.join(SPACE_NAMES)} (default: mlp)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--dataset", default="mnist", metavar="NAME",
                        help="Keras data set to download once: mnist, fashion_mnist or cifar10 (default: mnist)")
    source.add_argument("--data", metavar="PATH",
                        help="local data instead: a Keras-layout .npz (x_train, y_train, x_test, y_test; images "
                             "(N, H, W) or (N, H, W, C)) or a folder of IDX or .npy files. Colour images are "
                             "standardised per channel")
    parser.add_argument("--max_epochs", type=int, default=30,
                        help="epoch budget; the cosine learning-rate decay reaches zero here (default: 30)")
    parser.add_argument("--patience", type=int, default=10,
                        help="stop after this many epochs in a row with validation accuracy below the best so far "
                             "(a tie counts as progress) (default: 10)")
    parser.add_argument("--batch_size", type=int, default=100, help="minibatch size (default: 100)")
    parser.add_argument("--lr", type=float, default=3e-3,
                        help="peak learning rate of Adam, after a one-epoch warm-up (default: 3e-3)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed for initialisation, validation split and data order (default: 0)")
    parser.add_argument("--init", default="random", choices=("random", "parent"),
                        help="'random' (default) or 'parent': start from the float parent of the space pruned to "
                             "the architecture's widths (trained once and cached in --cache_dir)")
    add_parent_flags(parser, "start from YOUR trained Dense/ReLU model instead; implies --init parent", embedding=False)
    parser.add_argument("--cache_dir", default="cache", help="where the float parent is cached (default: cache)")
    parser.add_argument("--output_dir", metavar="DIR",
                        help="output folder (default: runs/train_arc/<space>-<arch>-<data>-seed<S>)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the interrupted run in the output folder from its last checkpoint")
    parser.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                        help="padded random crops and horizontal flips of the training images (default: on for colour "
                             "images, off for digits)")
    parser.add_argument("--no_tflite", dest="tflite", action="store_false",
                        help="skip the TFLite export (done through Larq Compute Engine when it is installed)")
    return parser


def resume_command(argv: list[str]) -> str:
    """The command that continues this run: the same arguments plus --resume."""
    args = [a for a in argv if a != "--resume"]
    return shlex.join(["python", "train_arc.py", *args, "--resume"])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    from qnas.errors import UserInputError
    from qnas.trainer import TrainConfig, TrainingInterrupted, format_result, train_architecture

    config = TrainConfig(
        arch=args.fixed_arc, space=args.space, dataset=args.dataset, data_path=args.data,
        max_epochs=args.max_epochs, batch_size=args.batch_size, seed=args.seed, output_dir=args.output_dir,
        resume=args.resume, init=args.init, lr=args.lr, patience=args.patience, cache_dir=args.cache_dir,
        tflite=args.tflite, parent=args.parent, parent_layout=args.parent_layout, augment=args.augment,
    )
    try:
        result = train_architecture(config, command=shlex.join(["python", "train_arc.py", *argv]))
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
    print(format_result(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
