"""Throughput: supernet training steps against a plain Keras model of the largest widths; child evaluations.

    python bench/bench_throughput.py [--space conv] [--steps 40]

Both sides train on the same minibatches (batch 100) in the same process; the ratio is
supernet steps per second over Keras steps per second. Child evaluations are what the controller
phase does per child: BatchNorm calibration, a 256-image validation minibatch, similarity on the probe
batch. Writes the ``throughput`` section of BENCHMARKS.md.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # before anything imports TensorFlow

import argparse
import time

import numpy as np
import tensorflow as tf
from common import DEFAULT_DATA, log, write_section

from enas.evaluator import SharedWeightEvaluator
from enas.strategies.random import RandomStrategy
from enas.supernet import Supernet
from qnas.arch import parse_arch
from qnas.data import load_dataset
from qnas.models import build_model
from qnas.objective import Objective
from qnas.parent import get_parent, probe_batch
from qnas.spaces import get_space


def timed(fn, repeats: int) -> float:
    """Calls per second of ``fn`` (after one warm-up call)."""
    fn(0)
    start = time.perf_counter()
    for i in range(repeats):
        fn(i + 1)
    return repeats / (time.perf_counter() - start)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=DEFAULT_DATA)
    p.add_argument("--space", default="conv")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--evals", type=int, default=20)
    args = p.parse_args()
    data = load_dataset(data_path=args.data, seed=0)
    space = get_space(args.space)
    batches = [(data.x_train[i * 100:(i + 1) * 100], data.y_train[i * 100:(i + 1) * 100]) for i in range(args.steps + 1)]
    largest = parse_arch(" ".join(f"{max(space.widths)} 0" for _ in range(space.num_layers)))
    model = build_model(space, largest, data.input_shape, data.num_classes)
    model.compile(tf.keras.optimizers.legacy.Adam(2e-3), "sparse_categorical_crossentropy")
    keras_rate = timed(lambda i: model.train_on_batch(*batches[i]), args.steps)
    net = Supernet(space, data.input_shape, data.num_classes, seed=0)
    children = [space.decode(d) for d in RandomStrategy(space.decisions(), seed=0).ask(args.steps + 1)]
    random_rate = timed(lambda i: net.train_step(*batches[i], children[i]), args.steps)
    largest_rate = timed(lambda i: net.train_step(*batches[i], largest), args.steps)
    parent = get_parent(get_space(args.space), data, seed=0, cache_dir="cache", log=log)
    x_probe = probe_batch(data, 300)
    evaluator = SharedWeightEvaluator(net, data, parent.embeddings(x_probe), parent.bits, x_probe, data.x_train[:256],
                                      Objective())
    rng = np.random.default_rng(0)
    minibatches = [rng.choice(len(data.x_val), 256, replace=False) for _ in range(args.evals + 1)]
    eval_rate = timed(lambda i: evaluator.evaluate_one(children[i % len(children)], data.x_val[minibatches[i]],
                                                   data.y_val[minibatches[i]]), args.evals)
    rows = [
        f"| Keras `train_on_batch`, float model of the largest widths `{largest}` | {keras_rate:.1f} | 1.00 |",
        f"| supernet step, that same largest child | {largest_rate:.1f} | {largest_rate / keras_rate:.2f} |",
        f"| supernet step, a new uniformly drawn child each step | {random_rate:.1f} | {random_rate / keras_rate:.2f} |",
        (f"| child evaluation (calibrate + 256 val images + similarity on 300 probes) | {eval_rate:.1f} | "
         f"{eval_rate / keras_rate:.2f} |"),
    ]
    for r in rows:
        log(r)
    write_section(f"throughput_{args.space}", f"""## Throughput ({args.space} space)

`python bench/bench_throughput.py --space {args.space} --steps {args.steps} --evals {args.evals}`: batch 100,
mnist-10k, one process, per second (higher is better); ratio to the Keras baseline measured in the same run.

| what | per second | ratio to Keras |
|---|---|---|
{chr(10).join(rows)}
""")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
