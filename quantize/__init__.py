"""Layer types for quantized networks: a registry of precisions, layer-block factories and bit accounting.

The one place the environment is prepared: larq needs Keras 2, so legacy Keras is selected here,
before anything imports TensorFlow. Every package of the project imports this one first (through
``qnas``), and importing it stays cheap (no TensorFlow), so ``--help`` stays fast.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
