"""The deployment step of a training run: export with the target, check the file, measure it, describe it.

``train_arc`` (``qnas.trainer``) calls ``deploy_model`` after the test evaluation; its record is
result.json's ``deploy`` section and ``format_deploy`` its line in the final summary.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from qnas.arch import Architecture
from qnas.errors import UserInputError
from qnas.space import SearchSpace
from qnas.targets.artifact import CALIBRATION_IMAGES, ExportError
from qnas.targets.base import Target, default_target, get_target
from qnas.targets.measure import file_top1, measure_latency

FILE_NAME = "model.tflite"


def resolve_target(name: str | None) -> Target:
    """The target called ``name``, or the best one installed when ``name`` is None (``UserInputError`` if unusable)."""
    return default_target() if name is None else get_target(name)


def deploy_model(model, space: SearchSpace, arch: Architecture, target: Target | str, folder: str | Path,
                 x_train: np.ndarray, x_test: np.ndarray, log: Callable[[str], None] | None = None,
                 latency_repeats: int = 50, export: bool = True, y_test: np.ndarray | None = None) -> dict[str, Any]:
    """Export ``model`` for ``target`` into ``folder/model.tflite``, check it against Keras, time it.

    Returns the record ``{target, theoretical, path, bytes, predicted_bytes, top1_agreement,
    agreement_images, test_accuracy, latency_ms, layers}`` (``test_accuracy``: the file's own, given ``y_test``);
    a converter failure is recorded as ``skipped`` (the training run is not lost for it), and an unusable
    target raises ``UserInputError`` before that.
    ``export=False`` records the prediction only (``skipped: turned off``).
    """
    log = log or (lambda text: None)
    target = get_target(target, require=False)
    input_shape, classes = tuple(int(d) for d in x_train.shape[1:]), int(model.output_shape[-1])
    record: dict[str, Any] = {
        "target": target.name, "theoretical": target.theoretical, "path": None, "bytes": None,
        "predicted_bytes": target.predict_bytes(arch, space, input_shape, classes),
        "top1_agreement": None, "agreement_images": 0, "test_accuracy": None, "latency_ms": None,
        "layers": target.layer_table(arch, space, input_shape),
    }
    if target.theoretical:
        record["skipped"] = f"target {target.name!r} is a theoretical count: no file"
        return record
    if not export:
        record["skipped"] = "turned off"
        return record
    reason = target.unavailable()
    if reason:
        raise UserInputError(f"target {target.name!r} is not usable here: {reason}")
    try:
        path = target.export(model, space, arch, Path(folder) / FILE_NAME, x_train[:CALIBRATION_IMAGES])
    except ExportError as err:
        log(f"deploy: {target.name} export failed: {err}")
        record["skipped"] = str(err)
        return record
    record["path"] = path.name
    record["bytes"] = path.stat().st_size
    record["top1_agreement"], record["test_accuracy"] = file_top1(model, target, path, x_test, y_test)
    record["agreement_images"] = len(x_test)
    record["latency_ms"] = measure_latency(target, path, x_test, repeats=latency_repeats).as_dict()
    return record


def summary_line(label: str, text: str) -> str:
    """One line of ``train_arc``'s final summary: the label in a column of its own, then the text."""
    return f"{label:<16} {text}"


def format_deploy(record: dict[str, Any]) -> str:
    """The summary line: real file bytes beside predicted, agreement with Keras, latency."""
    name = record["target"]
    if record.get("theoretical"):
        return summary_line("deploy", f"{name}: {record['predicted_bytes']:,} bytes (theoretical: no file)")
    if record.get("skipped"):
        return summary_line("deploy", f"{name}: skipped ({record['skipped']}); predicted "
                                      f"{record['predicted_bytes']:,} bytes")
    lat = record["latency_ms"]
    own = "" if record.get("test_accuracy") is None else f", test accuracy {record['test_accuracy']:.4f}"
    return summary_line("deploy", f"{name}: {record['path']} {record['bytes']:,} bytes (predicted "
                                  f"{record['predicted_bytes']:,}){own}; top-1 agrees with Keras on "
                                  f"{100 * record['top1_agreement']:.2f}% of {record['agreement_images']} test images; "
                                  f"{lat['single_ms']:.3f} ms per image, {lat['batch_ms']:.2f} ms per batch of "
                                  f"{lat['batch']} (1 thread)")
