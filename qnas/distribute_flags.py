"""The ``--distribute`` and ``--replicas`` flags, shared by train_arc.py and the search (no TensorFlow import).

``qnas.distribute`` turns them into a ``tf.distribute`` strategy; this module only declares and checks
them, so ``--help`` and flag errors stay fast.
"""
from __future__ import annotations

import argparse

from qnas.errors import UserInputError

DISTRIBUTE_MODES = ("none", "mirrored", "multi_worker")


def add_distribute_flags(parser: argparse.ArgumentParser, trained: str) -> None:
    """``--distribute`` and ``--replicas``; ``trained`` names what is trained data-parallel."""
    parser.add_argument("--distribute", default="none", choices=DISTRIBUTE_MODES,
                        help=f"data-parallel training of {trained}: 'mirrored' over this machine's GPUs (or "
                             f"--replicas logical CPU devices), 'multi_worker' over the machines listed in the "
                             f"TF_CONFIG environment variable (one process per machine; the chief writes the "
                             f"results). --batch_size stays the global batch, split across replicas "
                             f"(default: none)")
    parser.add_argument("--replicas", type=int, metavar="N",
                        help="with --distribute mirrored: use N devices: the first N GPUs, or, where no GPU is "
                             "visible, the CPU split into N logical devices (default: every GPU)")


def check_distribute_flags(mode: str, replicas: int | None) -> None:
    """Refuse a flag combination that cannot work, saying what is expected."""
    if mode not in DISTRIBUTE_MODES:
        raise UserInputError(f"unknown --distribute {mode!r}; expected one of {list(DISTRIBUTE_MODES)}")
    if replicas is None:
        return
    if mode != "mirrored":
        raise UserInputError(f"--replicas applies to --distribute mirrored only (got --distribute {mode}); "
                             f"a multi_worker run uses each machine's GPUs, or its CPU")
    if replicas < 1:
        raise UserInputError(f"--replicas must be at least 1, got {replicas}")
