"""The float parent: one float network per (space, data set, seed), trained once and cached on disk.

Both strategies compare children to it (similarity loss, size ratio) and EComp compresses it.
The cache key holds a fingerprint of the training data, so a different data file never reuses
a stale parent.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from qnas.arch import Architecture
from qnas.data import Dataset
from qnas.models import arch_bits, block_output_names, build_model
from qnas.records import run_record, write_json_atomic
from qnas.seeding import seed_everything
from qnas.space import SearchSpace, Space

# The parent trains for 20 epochs, or about 1,440 minibatches (20 epochs of the 7,200-image MNIST subset) when
# that is fewer: 3 epochs of full MNIST, so the default run costs about the same whatever the data set's size.
PARENT_EPOCHS = 20
PARENT_STEPS = 1440
PARENT_LR = 3e-3


@dataclass
class Parent:
    """A trained float network and what the searches need from it."""

    model: tf.keras.Model
    arch: Architecture | None
    embedding_layers: list[str]
    test_accuracy: float
    bits: int
    source: str

    def embedding_model(self) -> tf.keras.Model:
        """The parent cut at its embedding layers: one output per layer."""
        return tf.keras.Model(self.model.inputs, [self.model.get_layer(n).output for n in self.embedding_layers])

    def embeddings(self, x: np.ndarray, batch_size: int = 500) -> list[np.ndarray]:
        """Activations of the embedding layers on ``x`` (inference mode), one array per layer."""
        outs = self.embedding_model().predict(as_model_input(self.model, x), batch_size=batch_size, verbose=0)
        return [np.asarray(o) for o in (outs if isinstance(outs, list) else [outs])]


def as_model_input(model: tf.keras.Model, x: np.ndarray) -> np.ndarray:
    """Images reshaped to what ``model`` takes, when only the layout differs ((28, 28, 1) -> (784,))."""
    want = tuple(model.input_shape[1:])
    return x if tuple(x.shape[1:]) == want else x.reshape((len(x), *want))


def data_fingerprint(data: Dataset) -> str:
    """A short hash of the training images and labels (shapes included)."""
    h = hashlib.sha1()
    for arr in (data.x_train, data.y_train):
        h.update(str(arr.shape).encode())
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()[:12]


def default_parent_epochs(num_train: int, batch_size: int = 100) -> int:
    """``PARENT_EPOCHS``, or fewer (at least one) where that would be more than about ``PARENT_STEPS`` minibatches."""
    return max(1, min(PARENT_EPOCHS, round(PARENT_STEPS / -(-num_train // batch_size))))


def train_parent(space: SearchSpace, data: Dataset, seed: int = 0, epochs: int | None = None,
                 batch_size: int = 100, verbose: int = 0) -> tf.keras.Model:
    """Train the space's float parent from scratch: Adam with a cosine-decayed learning rate.

    A constant rate leaves a conv parent wherever BatchNorm's swings put it (95% on the MNIST subset);
    decayed to zero over the run it reaches about 98%.
    """
    seed_everything(seed)
    arch = space.parent_arch()
    model = build_model(space, arch, data.input_shape, data.num_classes, name=f"parent_{space.name}")
    epochs = epochs or default_parent_epochs(len(data.x_train), batch_size)
    steps = epochs * -(-len(data.x_train) // batch_size)
    schedule = tf.keras.optimizers.schedules.CosineDecay(PARENT_LR, decay_steps=steps)
    model.compile(optimizer=tf.keras.optimizers.legacy.Adam(schedule), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(data.x_train, data.y_train, batch_size=batch_size, epochs=epochs,
              validation_data=(data.x_val, data.y_val), verbose=verbose, shuffle=True)
    return model


def get_parent(space: Space, data: Dataset, seed: int = 0, cache_dir: str | Path = "cache",
               epochs: int | None = None, log=print) -> Parent:
    """The cached float parent for (space, data, seed), training and saving it on first use.

    A space whose parent lives in another space (``micro``'s is the ``conv`` chain) shares that space's cache.
    """
    space = space.parent_space()
    epochs = epochs or default_parent_epochs(len(data.x_train))
    key = f"parent-{space.name}-{data_fingerprint(data)}-seed{seed}-ep{epochs}-cos"
    folder = Path(cache_dir)
    model_path, info_path = folder / f"{key}.keras", folder / f"{key}.json"
    arch = space.parent_arch()
    if model_path.exists() and info_path.exists():
        model = tf.keras.models.load_model(model_path)
        info = json.loads(info_path.read_text())
        log(f"parent: reusing {model_path} (test accuracy {info['test_accuracy']:.4f})")
    else:
        log(f"parent: training the float {space.name} parent {arch.readable()} for {epochs} epochs (seed {seed})")
        start = time.time()
        model = train_parent(space, data, seed=seed, epochs=epochs)
        _, test_acc = model.evaluate(data.x_test, data.y_test, verbose=0, batch_size=1000)
        info = {"test_accuracy": float(test_acc), "arch": arch.to_string(), "space": space.name,
                "data": data.name, "epochs": epochs, "seconds": round(time.time() - start, 1),
                **run_record(seed)}
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{key}.tmp.keras"
        model.save(tmp)
        tmp.replace(model_path)
        write_json_atomic(info_path, info)
        log(f"parent: test accuracy {test_acc:.4f}, saved to {model_path} ({info['seconds']} s)")
    return Parent(model=model, arch=arch, embedding_layers=block_output_names(model, len(arch)),
                  test_accuracy=float(info["test_accuracy"]),
                  bits=arch_bits(space, arch, data.input_shape, data.num_classes), source=str(model_path))


def probe_batch(data: Dataset, n: int = 500, seed: int = 0) -> np.ndarray:
    """A fixed subset of the validation split on which parent and children are compared."""
    idx = np.random.default_rng(seed).choice(len(data.x_val), size=min(n, len(data.x_val)), replace=False)
    return data.x_val[np.sort(idx)]
