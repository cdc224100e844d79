"""Hand a trained model over: a reloadable ``.keras`` file and, when Larq Compute Engine is installed, TFLite.

larq's layers, quantizers and constraints register themselves with Keras when ``larq`` is imported,
so ``load_model`` only has to make sure that import happened; no ``custom_objects`` are needed. In
another program: ``import larq`` then ``tf.keras.models.load_model(path)`` (without the import,
Keras leaves the quantizers as strings and the model fails when called).
Every file is written under a temporary name and renamed, so a crash never leaves a half-written
model under the final name.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import larq  # noqa: F401  (registers larq's custom objects with Keras)
import numpy as np
import tensorflow as tf


def save_model(model: tf.keras.Model, path: str | Path) -> Path:
    """Save ``model`` in the native ``.keras`` format, atomically."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"model path must end in .keras, got {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.keras")
    try:
        model.save(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_model(path: str | Path) -> tf.keras.Model:
    """Reload a model saved by ``save_model`` (larq layers included), ready for ``predict``."""
    return tf.keras.models.load_model(Path(path), compile=False)


@dataclass(frozen=True)
class TfliteExport:
    """Where the TFLite file went, or why there is none."""

    path: Path | None
    skipped: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {"path": str(self.path) if self.path else None, "skipped": self.skipped}


def lce_available() -> str | None:
    """None when Larq Compute Engine imports, otherwise the reason it does not."""
    try:
        import larq_compute_engine  # noqa: F401
    except Exception as err:  # noqa: BLE001  (ImportError, or a binary that does not load against this TF)
        return f"larq-compute-engine is not usable here ({type(err).__name__}: {err}); install the 'lce' extra"
    return None


def export_tflite(model: tf.keras.Model, path: str | Path) -> TfliteExport:
    """Convert ``model`` with Larq Compute Engine (binary layers become LCE's bit-packed ops).

    Never raises for a missing or broken converter: the export is optional, so it is skipped
    with the reason recorded.
    """
    reason = lce_available()
    if reason:
        return TfliteExport(None, reason)
    import larq_compute_engine as lce

    path = Path(path)
    try:
        flatbuffer = lce.convert_keras_model(model)
    except Exception as err:  # noqa: BLE001  (the converter's errors come from MLIR, no common type)
        return TfliteExport(None, f"Larq Compute Engine could not convert the model ({type(err).__name__}: {err})")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(flatbuffer)
    os.replace(tmp, path)
    return TfliteExport(path)


def tflite_predict(path: str | Path, x: np.ndarray, num_threads: int = 1) -> np.ndarray:
    """Run a TFLite file made by ``export_tflite`` on ``x`` with LCE's interpreter (it knows LCE's ops)."""
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    interpreter = Interpreter(Path(path).read_bytes(), num_threads=num_threads)
    return np.asarray(interpreter.predict(np.asarray(x, np.float32)))
