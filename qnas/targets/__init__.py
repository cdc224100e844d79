"""Deployment targets: predicted bytes, real exports, agreement and latency of the file a user ships.

``get_target("lce" | "tflite_int8" | "bits")`` gives a ``Target``; ``default_target()`` the best one
installed. See ``qnas.targets.base`` for the interface and BENCHMARKS.md (section ``targets``) for
predicted against real bytes, agreement with Keras and latency.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from qnas.targets.base import (
    LayerCost,
    LayerSlot,
    Target,
    default_target,
    describe_targets,
    get_target,
    layer_slots,
    register,
    target_names,
)
from qnas.targets.bits import BitsTarget
from qnas.targets.lce import LceTarget
from qnas.targets.tflite_int8 import TfliteInt8Target

register("lce", LceTarget, preference=0)
register("tflite_int8", TfliteInt8Target, preference=1)
register("bits", BitsTarget)

__all__ = [
    "BitsTarget", "LayerCost", "LayerSlot", "LceTarget", "Target", "TfliteInt8Target", "default_target",
    "describe_targets", "get_target", "layer_slots", "register", "target_names",
]
