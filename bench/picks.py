"""Retraining a search's picks, shared by the benches that compare them (strategies, ablation).

One folder per (seed, architecture), so an architecture that two strategies or two reward settings pick is
trained once, and a killed retrain resumes.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import common  # noqa: F401  (the repository on sys.path, TensorFlow's environment) before train_arc

import train_arc


def retrain_pick(command: Sequence[str], arch: str, seed: int, folder: Path, epochs: int) -> dict:
    """Test accuracy and predicted bytes of ``arch`` retrained by a search's printed ``train_arc`` ``command``."""
    out = folder / f"seed{seed}-{'_'.join(arch.split())}"
    if not (out / "result.json").exists():
        cmd = [*command, "--max_epochs", str(epochs), "--output_dir", str(out), "--no_tflite",
               *(["--resume"] if (out / "run_config.json").exists() else [])]
        cmd[cmd.index("-fixed_arc") + 1] = arch
        if train_arc.main(cmd):
            raise SystemExit(f"train_arc failed for {arch}")
    record = json.loads((out / "result.json").read_text())
    return {"test": record["metrics"]["test_accuracy"], "bytes": record["deploy"]["predicted_bytes"]}


def without(command: Sequence[str], *flags: str) -> list[str]:
    """``command`` less each flag in ``flags`` and its value (``--distill`` is given without one)."""
    out, skip = [], 0
    for part in command:
        if skip:
            skip -= 1
            continue
        if part in flags:
            skip = 0 if part == "--distill" else 1
            continue
        out.append(part)
    return out
