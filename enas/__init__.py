"""ENAS-style search over widths and layer precisions: space, architectures, models, data, controller.

larq needs Keras 2, so legacy Keras is selected here, before anything imports TensorFlow.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
