"""The export steps every real target shares: fold, calibrate, write a SavedModel, convert quietly, write atomically."""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from qnas.arch import Architecture
from qnas.space import SearchSpace
from qnas.targets.fold import DeployGraph, fold_model
from qnas.targets.quiet import quiet

CALIBRATION_IMAGES = 512  # training images that set the ranges of float32 layers and the head on int8 targets


class ExportError(RuntimeError):
    """The converter refused the deployment graph; ``log`` holds its (otherwise hidden) output."""

    def __init__(self, message: str, log: str = ""):
        super().__init__(message)
        self.log = log


def input_range(images: np.ndarray) -> tuple[float, float]:
    """The image range the int8 input tensor covers: [0, 1] for images in it (so k/255 pixels are exact)."""
    lo, hi = float(np.min(images)), float(np.max(images))
    return (min(0.0, lo), max(1.0, hi))


def deploy_graph(model, space: SearchSpace, arch: Architecture, precisions: Sequence[str], head_precision: str,
                 calibration_images: np.ndarray) -> DeployGraph:
    """Fold ``model`` and calibrate the ranges that have no fixed grid on (a subset of) ``calibration_images``."""
    images = np.asarray(calibration_images[:CALIBRATION_IMAGES], np.float32)
    if len(images) == 0:
        raise ValueError("calibration needs at least one training image")
    graph = DeployGraph(fold_model(model, space, arch, precisions, head_precision), input_range(images))
    graph.calibrate(images)
    return graph


def convert_and_write(graph: DeployGraph, path: str | Path, convert: Callable[[Path], bytes]) -> Path:
    """Save ``graph`` as a SavedModel, run ``convert`` on it with its chatter hidden, write ``path`` atomically."""
    with tempfile.TemporaryDirectory(prefix="qnas-export-") as tmp:
        return _write(path, lambda: convert(graph.save(Path(tmp) / "saved_model")))


def convert_keras_and_write(model, path: str | Path, convert: Callable[[object], bytes]) -> Path:
    """Run ``convert`` on a Keras model with its chatter hidden and write ``path`` atomically."""
    return _write(path, lambda: convert(model))


def _write(path: str | Path, make: Callable[[], bytes]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with quiet():
            flatbuffer = make()
    except Exception as err:
        first_line = str(err).splitlines()[0] if str(err) else ""
        raise ExportError(f"the converter failed: {type(err).__name__}: {first_line}",
                          getattr(err, "converter_log", "")) from err
    tmp_path = path.with_name(f".{path.name}.tmp")
    tmp_path.write_bytes(flatbuffer)
    os.replace(tmp_path, path)
    return path
