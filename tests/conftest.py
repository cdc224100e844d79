"""Shared test setup: legacy Keras before TensorFlow, quiet logs, repo root importable."""
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist-10k.npz"
