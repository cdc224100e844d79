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

from qnas.distribute_flags import add_distribute_flags
from qnas.parent_flags import add_parent_flags

DEFAULT_SPACE = "conv"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--space", default=DEFAULT_SPACE,
                   help="search space: mlp, conv or micro (ENAS cells; bounded defaults: 20 epochs, --max_minutes 24, "
                        "--max_kib 63, --lr 6e-3, --reward_weights 1,0,0) (default %(default)s)")
    p.add_argument("--num_layers", type=int, help="hidden layers to search (default: the space's, mlp 2, conv 4)")
    p.add_argument("--widths", help="candidate widths, comma-separated (default: mlp 16..512, conv 8..128)")
    p.add_argument("--types", help="candidate layer types, codes or names, comma-separated (default: those that are "
                                   "smaller on --target, of all six; micro: binary, which LCE bit-packs)")
    p.add_argument("--dataset", default="mnist",
                   help="mnist, fashion_mnist or cifar10, downloaded once (default %(default)s)")
    p.add_argument("--data", help="local .npz (Keras layout, images (N, H, W) or (N, H, W, C)) or folder of IDX or "
                                  ".npy files; replaces --dataset. Colour images are standardised per channel")
    p.add_argument("--num_classes", type=int,
                   help="class count K; labels must be 0..K-1 (default: the largest label + 1)")
    p.add_argument("--epochs", type=int, help="search epochs (default 20)")
    p.add_argument("--strategy", default="controller", help="controller (ENAS LSTM), random or evolution (regularized, aging); 'controller,random,evolution' "
                        "runs them on the same shared weights and the same minibatches, a like-for-like comparison "
                        "(default %(default)s)")
    p.add_argument("--reward_weights",
                   help="w_acc,w_sim,w_size of reward = w_acc*acc - w_sim*similarity + w_size*(1 - size_ratio) "
                        "(default 1,0.05,0.5; micro 1,0,0: no similarity to the conv parent); a fourth number "
                        "w_lat adds w_lat*(1 - latency/parent's latency), the target's predicted latency (default 0)")
    p.add_argument("--target", metavar="NAME",
                   help="deployment target whose file size is the size the reward, --max_kib and every printed KiB "
                        "use: lce (Larq Compute Engine), tflite_int8 (full-integer TFLite, as TFLite Micro runs it) or "
                        "bits (the theoretical count) (default: the best installed, lce else tflite_int8; printed). "
                        "Without --types the search keeps the types that are smaller on the target; its per-layer "
                        "latency table on this machine predicts the ms of --max_ms and the latency weight")
    p.add_argument("--max_kib", type=float,
                   help="size budget: architectures above it are penalised and never picked (default: none; micro 63)")
    p.add_argument("--max_ms", type=float, metavar="MS",
                   help="latency budget: architectures whose single-image latency on --target, predicted by its "
                        "per-layer table of this machine (measured once, cached in --cache_dir), exceeds MS "
                        "milliseconds are penalised and never picked (default: none; chain spaces only)")
    p.add_argument("--max_minutes", type=float,
                   help="time budget: stop after the epoch that passes it, then pick the winner "
                        "(default: none; micro 24)")
    p.add_argument("--child_sampling", default="uniform", choices=["uniform", "strategy"],
                   help="who picks the child trained on each minibatch (default %(default)s)")
    p.add_argument("--controller_steps", type=int, help="strategy updates per epoch (default 15; micro 10)")
    p.add_argument("--controller_batch", type=int, default=5,
                   help="architectures sampled and scored per update (default %(default)s)")
    p.add_argument("--warmup_epochs", type=int,
                   help="epochs that train the shared weights only, before the strategies' first update "
                        "(default: half of --epochs, 10 of 20; micro 5)")
    p.add_argument("--controller_lr", type=float, help="controller's Adam learning rate (default 1e-2; micro 3.5e-3)")
    p.add_argument("--tanh_constant", type=float,
                   help="controller logits are squashed to c * tanh(logits / T): c (default 5; micro 1.5)")
    p.add_argument("--controller_temperature", type=float, help="... and T (default: none)")
    p.add_argument("--entropy_weight", type=float, default=1e-4,
                   help="weight of the controller's entropy bonus (default %(default)s)")
    p.add_argument("--baseline_decay", type=float, default=0.99,
                   help="decay of the controller's moving-average reward baseline (default %(default)s)")
    p.add_argument("--population_size", type=int, default=50, help="evolution: members alive (default %(default)s)")
    p.add_argument("--sample_size", type=int, default=10, help="evolution: tournament size (default %(default)s)")
    p.add_argument("--sandwich", action=argparse.BooleanOptionalAction, default=False,
                   help="each shared-weight minibatch also trains the largest and the smallest child "
                        "(default %(default)s)")
    p.add_argument("--finalist_steps", type=int, metavar="N",
                   help="before the last ranking, each finalist trains N minibatches alone from the shared weights "
                        "(at most 3 passes over the training split), which ranks them closer to standalone training; "
                        "0: score the shared weights as they are (default 200; micro 0)")
    p.add_argument("--distill", type=float, default=0.0, metavar="ALPHA",
                   help="children learn from the float parent's soft targets with this weight, from the labels with "
                        "1 - ALPHA (default %(default)s: labels only)")
    p.add_argument("--distill_temperature", type=float, default=1.0,
                   help="temperature of those soft targets (default %(default)s)")
    p.add_argument("--feature_distill", type=float, default=0.0,
                   help="weight of the similarity to the parent's block outputs as a training loss of the children "
                        "(default %(default)s)")
    p.add_argument("--batch_size", type=int, default=100, help="minibatch of the shared weights (default %(default)s)")
    p.add_argument("--supernet_step", default="auto", choices=["auto", "eager", "compiled"],
                   help="shared-weight step: one compiled tf.function for every child (auto, compiled) or eager "
                        "slicing (default %(default)s: compiled, about twice as fast even on CPUs, and always with "
                        "--distribute)")
    p.add_argument("--child_steps", type=int, default=72,
                   help="shared-weight minibatches per epoch, whatever the data set's size; 0: one pass over the "
                        "training split (default %(default)s: one pass of the 7,200-image MNIST subset)")
    p.add_argument("--lr", type=float, help="Adam learning rate of the shared weights, cosine-decayed over the search "
                                            "(default 2e-3; micro 6e-3)")
    p.add_argument("--seed", type=int, default=0, help="seeds every random choice (default %(default)s)")
    p.add_argument("--output_dir", help="where checkpoints, logs and results go (default runs/search/<space>-seed<S>)")
    p.add_argument("--cache_dir", default="cache", help="where the float parent is cached (default %(default)s)")
    add_parent_flags(p, "your trained model, which replaces the cached float parent")
    p.add_argument("--retrain_epochs", type=int, metavar="N",
                   help="epochs of the train_arc.py command printed at the end (its --max_epochs; default: "
                        "train_arc's 30; 100 with --parent, whose command also keeps the last epoch)")
    p.add_argument("--plot", action="store_true",
                   help="at the end, draw pareto.png: accuracy vs size of every architecture scored, front marked")
    p.add_argument("--resume", action="store_true", help="continue the run in --output_dir from its last checkpoint")
    add_distribute_flags(p, "the supernet's shared weights (the controller and the scoring run on every worker alike)")
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
