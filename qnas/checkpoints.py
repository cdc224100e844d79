"""Checkpoints that fail safe: find the newest one that can actually be read, and fall back when it cannot.

A kill, a full disk or a copy interrupted half-way can leave the newest checkpoint truncated while the
one before it is intact. ``tf.train.Checkpoint.restore`` would then stop the resumed run with a low-level
error (``IndexError: Read less bytes than requested``). Here every tensor of a checkpoint is read once
before it is restored, newest first, so a broken file is skipped with a warning and never half-applied.
The candidates come from the ``ckpt-N.index`` files on disk, not from the ``checkpoint`` state file,
which can itself be damaged.
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as tf

from qnas.errors import UserInputError

_INDEX = re.compile(r"^ckpt-(\d+)\.index$")


def checkpoint_prefixes(directory: str | Path) -> list[str]:
    """The ``ckpt-N`` prefixes in ``directory``, newest (highest N) first; empty when there are none."""
    folder = Path(directory)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), str(folder / f"ckpt-{m.group(1)}"))
             for name in os.listdir(folder) if (m := _INDEX.match(name))]
    return [prefix for _, prefix in sorted(found, reverse=True)]


def unreadable_reason(prefix: str) -> str | None:
    """None when every tensor of the checkpoint at ``prefix`` reads back; otherwise why it does not."""
    try:
        reader = tf.train.load_checkpoint(prefix)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except Exception as err:  # noqa: BLE001 - truncation surfaces as IndexError, OpError, DataLossError, ...
        return f"{type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else 'unreadable'}"
    return None


def restore_newest_readable(checkpoint: tf.train.Checkpoint, directory: str | Path,
                            log: Callable[[str], None]) -> str | None:
    """Restore the newest readable checkpoint of ``directory`` into ``checkpoint``; its prefix, or None if none exist.

    Unreadable ones are skipped with a warning naming the file; when checkpoints exist but none can be
    read, a ``UserInputError`` names each file and says how to start over.
    """
    prefixes = checkpoint_prefixes(directory)
    problems = []
    for prefix in prefixes:
        reason = unreadable_reason(prefix)
        if reason is None:
            checkpoint.restore(prefix)
            if problems:
                log(f"warning: the newest checkpoint could not be read ({'; '.join(problems)}); "
                    f"continuing from the previous one, {prefix}")
            return prefix
        problems.append(f"{prefix}: {reason}")
    if problems:
        raise UserInputError(f"no checkpoint in {directory} can be read ({'; '.join(problems)}); the run cannot "
                             f"continue: delete the output folder, or choose another --output_dir, to start over")
    return None


def folder_write_problem(path: str | Path) -> str | None:
    """Why files could not be created in ``path`` (None when they can), checked without writing anything.

    Walks up to the nearest existing ancestor: it must be a folder we may write into, and nothing on
    the way may be a file.
    """
    path = Path(path)
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is a file, not a folder"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"no permission to write in {probe}"
    return None
