"""Running searches and retraining what they picked, for the benches that compare picks.

Every search and every retrain is cached in its own folder: run once, resumed if killed, read back afterwards. Picks of a search
get one folder per (seed, architecture), so an architecture that two strategies or two reward settings pick is
trained once.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import common  # noqa: F401  (the repository on sys.path, TensorFlow's environment) before train_arc

import search_arc_mnist
import train_arc


def _run_once(main: Callable[[list[str]], int], script: str, config_file: str, argv: Sequence[str], out: Path) -> dict:
    """The result record of ``SCRIPT ARGV --output_dir OUT``: run only if ``out`` holds none yet, resumed when
    ``out`` already holds the run's ``config_file`` (an interrupted run)."""
    if not (out / "result.json").exists():
        resume = ["--resume"] if (out / config_file).exists() else []
        if main([*argv, "--output_dir", str(out), *resume]):
            raise SystemExit(f"{script} failed: {' '.join(argv)}")
    return json.loads((out / "result.json").read_text())


def train_once(argv: Sequence[str], out: Path) -> dict:
    """The result record of ``train_arc.py ARGV --output_dir OUT``, trained only if ``out`` holds none yet."""
    return _run_once(train_arc.main, "train_arc", "run_config.json", argv, out)


def search_once(argv: Sequence[str], out: Path) -> dict:
    """The result record of ``search_arc_mnist.py ARGV --output_dir OUT``, searched only if ``out`` holds none yet."""
    return _run_once(search_arc_mnist.main, "search_arc_mnist", "config.json", argv, out)


def retrain_pick(command: Sequence[str], arch: str, seed: int, folder: Path, epochs: int) -> dict:
    """Test accuracy and predicted bytes of ``arch`` retrained by a search's printed ``train_arc`` ``command``."""
    argv = [*command, "--max_epochs", str(epochs), "--no_tflite"]
    argv[argv.index("-fixed_arc") + 1] = arch
    record = train_once(argv, folder / f"seed{seed}-{'_'.join(arch.split())}")
    return {"test": record["metrics"]["test_accuracy"], "bytes": record["deploy"]["predicted_bytes"]}


def without(command: Sequence[str], *flags: str) -> list[str]:
    """``command`` less each flag in ``flags`` and its value, if it has one (``--distill`` may come bare)."""
    out, skip = [], False
    for part in command:
        if skip and not part.startswith("-"):
            skip = False
            continue
        skip = part in flags
        if not skip:
            out.append(part)
    return out
