"""Layer types for quantized networks: a registry of precisions, layer-block factories and bit accounting.

larq needs Keras 2, so legacy Keras is selected here, before anything imports TensorFlow.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from quantize.types import LAYER_TYPES, LayerType, get_layer_type

__all__ = ["LAYER_TYPES", "LayerType", "get_layer_type"]
