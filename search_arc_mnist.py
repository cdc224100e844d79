"""Search widths and per-layer precision with the ENAS controller and shared weights.

    python search_arc_mnist.py --data ../shared/data/mnist-10k.npz >> log

Prints plain, flushed lines (ENAS-style child and controller lines, and "Here are 10 architectures"
after each controller phase). It ends with the best architecture and the exact ``train_arc.py``
command that retrains it. ``--resume`` continues an interrupted run from its output folder.
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from qnas.parent_flags import add_parent_flags

DEFAULT_SPACE = "conv"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--space", default=DEFAULT_SPACE,
                   help="search space: mlp, conv or micro (ENAS cells; bounded defaults: 20 epochs, --max_minutes 24, "
                        "--max_kib 44, --lr 6e-3, --reward_weights 1,0,0.1) (default %(default)s)")
    p.add_argument("--num_layers", type=int, help="hidden layers to search (default: the space's, mlp 2, conv 4)")
    p.add_argument("--widths", help="candidate widths, comma-separated (default: mlp 16..512, conv 8..128)")
    p.add_argument("--types", help="candidate layer types, codes or names, comma-separated "
                                   "(default: all six; micro: binary, which LCE bit-packs)")
    p.add_argument("--dataset", default="mnist",
                   help="mnist, fashion_mnist or cifar10, downloaded once (default %(default)s)")
    p.add_argument("--data", help="local .npz (Keras layout, images (N, H, W) or (N, H, W, C)) or folder of IDX or "
                                  ".npy files; replaces --dataset. Colour images are standardised per channel")
    p.add_argument("--epochs", type=int, help="search epochs (default 20)")
    p.add_argument("--strategy", default="controller", help="controller (ENAS LSTM) or random; 'controller,random' runs both on the same shared weights "
                        "and the same minibatches, a like-for-like comparison (default %(default)s)")
    p.add_argument("--reward_weights",
                   help="w_acc,w_sim,w_size of reward = w_acc*acc - w_sim*similarity + w_size*(1 - size_ratio) "
                        "(default 1,0.05,0.5; micro 1,0,0.1: no similarity to the conv parent)")
    p.add_argument("--max_kib", type=float,
                   help="size budget: architectures above it are penalised and never picked (default: none; micro 44)")
    p.add_argument("--max_minutes", type=float,
                   help="time budget: stop after the epoch that passes it, then pick the winner "
                        "(default: none; micro 24)")
    p.add_argument("--child_sampling", default="uniform", choices=["uniform", "strategy"],
                   help="who picks the child trained on each minibatch (default %(default)s)")
    p.add_argument("--controller_steps", type=int, default=5, help="strategy updates per epoch (default %(default)s)")
    p.add_argument("--controller_batch", type=int, default=10,
                   help="architectures sampled and scored per update (default %(default)s)")
    p.add_argument("--batch_size", type=int, default=100, help="minibatch of the shared weights (default %(default)s)")
    p.add_argument("--lr", type=float, help="Adam learning rate of the shared weights, cosine-decayed over the search "
                                            "(default 2e-3; micro 6e-3)")
    p.add_argument("--seed", type=int, default=0, help="seeds every random choice (default %(default)s)")
    p.add_argument("--output_dir", help="where checkpoints, logs and results go (default runs/search/<space>-seed<S>)")
    p.add_argument("--cache_dir", default="cache", help="where the float parent is cached (default %(default)s)")
    add_parent_flags(p, "your trained model, which replaces the cached float parent")
    p.add_argument("--plot", action="store_true",
                   help="at the end, draw pareto.png: accuracy vs size of every architecture scored, front marked")
    p.add_argument("--resume", action="store_true", help="continue the run in --output_dir from its last checkpoint")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from enas.search_cli import run_from_args
    from qnas.errors import UserInputError

    try:
        return run_from_args(args, sys.argv[1:] if argv is None else argv)
    except UserInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        out = args.output_dir or "the output folder"
        cmd = " ".join(shlex.quote(a) for a in ["python", "search_arc_mnist.py", *(argv or sys.argv[1:])])
        if "--resume" not in cmd:
            cmd += " --resume"
        print(f"\ninterrupted: the last finished epoch is checkpointed in {out}; continue with:\n  {cmd}",
              file=sys.stderr, flush=True)
        return 130


if __name__ == "__main__":
    sys.exit(main())
