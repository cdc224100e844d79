"""EComp ported to Keras: the t-SNE similarity loss, the float parent, evolutionary compression, pruning.

larq needs Keras 2, so legacy Keras is selected here, before anything imports TensorFlow.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
