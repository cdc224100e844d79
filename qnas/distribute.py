"""Data-parallel training across devices and machines: the strategy from ``--distribute``, and who writes.

``make_distribution`` turns the flags into a ``Distribution``:

* ``none``: no strategy; everything runs as it always did (same code path, same numbers);
* ``mirrored``: ``tf.distribute.MirroredStrategy`` over this machine's GPUs or, where none is visible,
  over the CPU split into ``--replicas`` logical devices (useful for tests, not for speed);
* ``multi_worker``: ``tf.distribute.MultiWorkerMirroredStrategy`` over the cluster of the ``TF_CONFIG``
  environment variable, one process per machine, checked here first so that a missing or malformed
  value gets a clear message instead of a hang.

Every worker runs the same program on the same data, seeds and flags; the global batch
(``--batch_size``) is split across all replicas. Only the chief (the ``chief`` task, or worker 0
when the cluster has none) writes the run's files. A non-chief still saves its checkpoints, because
saving reads variables whose values are reduced across workers, and every worker must take part in
such a reduction; it saves them into a private temporary folder, removed when the process exits
(``worker_folder``). Its float-parent cache goes there too (``worker_cache``).

A multi-worker strategy must be created before TensorFlow runs anything, so ``make_distribution``
comes first in every entry point.
"""
from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import tensorflow as tf

from qnas.distribute_flags import check_distribute_flags
from qnas.errors import UserInputError

TF_CONFIG_EXAMPLE = ('{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                     '"task": {"type": "worker", "index": 0}}')
CLUSTER_ROLES = ("chief", "worker")
# One strategy per set of devices and process: two strategies over the same devices would number their
# collective operations alike, and TensorFlow then mixes them up (a shape mismatch in an all-reduce).
_STRATEGIES: dict[tuple[str, ...], tf.distribute.Strategy] = {}


@dataclass(frozen=True)
class ClusterTask:
    """This process's place in a ``TF_CONFIG`` cluster."""

    cluster: dict[str, list[str]]
    task_type: str
    task_index: int

    @property
    def is_chief(self) -> bool:
        """The chief task when the cluster names one, else worker 0 (TensorFlow's convention)."""
        if "chief" in self.cluster:
            return self.task_type == "chief"
        return self.task_type == "worker" and self.task_index == 0

    @property
    def num_workers(self) -> int:
        return sum(len(self.cluster.get(role, [])) for role in CLUSTER_ROLES)

    @property
    def name(self) -> str:
        return f"{self.task_type} {self.task_index}"


def _tf_config_error(problem: str) -> UserInputError:
    return UserInputError(f"--distribute multi_worker: {problem}. Every process needs TF_CONFIG naming the whole "
                          f"cluster and its own task, e.g. TF_CONFIG='{TF_CONFIG_EXAMPLE}' on the first machine "
                          f"and the same with \"index\": 1 on the second")


def parse_tf_config(text: str | None) -> ClusterTask:
    """The cluster and task of a ``TF_CONFIG`` value, refusing anything that could not start (see the message)."""
    if not text or not text.strip():
        raise _tf_config_error("the TF_CONFIG environment variable is not set")
    try:
        spec = json.loads(text)
    except ValueError as err:
        raise _tf_config_error(f"TF_CONFIG is not valid JSON ({err})") from None
    if not (isinstance(spec, dict) and isinstance(spec.get("cluster"), dict) and isinstance(spec.get("task"), dict)):
        raise _tf_config_error("TF_CONFIG must be a JSON object with a \"cluster\" object and a \"task\" object")
    cluster = spec["cluster"]
    unknown = sorted(set(cluster) - set(CLUSTER_ROLES))
    if unknown:
        raise _tf_config_error(f"TF_CONFIG's cluster has role(s) {unknown}; a multi-worker run uses only "
                               f"{list(CLUSTER_ROLES)}")
    if not cluster.get("worker") and not cluster.get("chief"):
        raise _tf_config_error("TF_CONFIG's cluster lists no \"worker\" addresses")
    seen: set[str] = set()
    for role, addresses in cluster.items():
        if not isinstance(addresses, list) or not addresses:
            raise _tf_config_error(f"TF_CONFIG's cluster.{role} must be a non-empty list of \"host:port\" strings")
        if role == "chief" and len(addresses) != 1:
            raise _tf_config_error(f"TF_CONFIG's cluster.chief must hold exactly one address, got {len(addresses)}")
        for address in addresses:
            _check_address(role, address)
            if address in seen:
                raise _tf_config_error(f"TF_CONFIG's cluster lists {address} twice; every task needs its own port")
            seen.add(address)
    task = spec["task"]
    task_type, index = task.get("type"), task.get("index", 0)
    if task_type not in cluster:
        raise _tf_config_error(f"TF_CONFIG's task.type is {task_type!r}; expected one of the cluster's roles "
                               f"{sorted(cluster)}")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(cluster[task_type]):
        raise _tf_config_error(f"TF_CONFIG's task.index is {index!r}; cluster.{task_type} has "
                               f"{len(cluster[task_type])} address(es), so it must be 0..{len(cluster[task_type]) - 1}")
    return ClusterTask({role: list(cluster[role]) for role in cluster}, task_type, index)


def _check_address(role: str, address: object) -> None:
    host, _, port = address.rpartition(":") if isinstance(address, str) else ("", "", "")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise _tf_config_error(f"TF_CONFIG's cluster.{role} holds {address!r}; expected \"host:port\" with a port "
                               f"1..65535")


class Distribution:
    """A run's strategy (None: no distribution) and this process's role in it."""

    def __init__(self, strategy: tf.distribute.Strategy | None = None, task: ClusterTask | None = None):
        self.strategy = strategy
        self.task = task
        self._temp: Path | None = None

    @property
    def is_chief(self) -> bool:
        """Whether this process writes the run's files (always, outside a multi-worker cluster)."""
        return self.task is None or self.task.is_chief

    @property
    def num_replicas(self) -> int:
        return 1 if self.strategy is None else int(self.strategy.num_replicas_in_sync)

    @property
    def num_workers(self) -> int:
        return 1 if self.task is None else self.task.num_workers

    def describe(self) -> str:
        if self.strategy is None:
            return "one device"
        devices = ", ".join(self.strategy.extended.worker_devices)
        if self.task is None:
            return f"mirrored over {self.num_replicas} replica(s) ({devices})"
        return (f"multi-worker: {self.num_workers} workers, {self.num_replicas} replica(s) in all; this is "
                f"{self.task.name}{' (chief)' if self.is_chief else ''} on {devices}")

    def scope(self) -> contextlib.AbstractContextManager:
        """Where variables and optimizers that the replicas share must be created."""
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    def check_batch(self, batch_size: int) -> None:
        """Every replica needs at least one example of the global batch."""
        if batch_size < self.num_replicas:
            raise UserInputError(f"--batch_size {batch_size} is the global batch, split across {self.num_replicas} "
                                 f"replicas; use at least {self.num_replicas}")

    def quiet(self, log: Callable[[str], None]) -> Callable[[str], None]:
        """The chief's log unchanged; a non-chief prints nothing (the chief reports for every worker)."""
        return log if self.is_chief else (lambda text: None)

    # ------------------------------------------------------------------ where a non-chief writes
    def _private_folder(self) -> Path:
        if self._temp is None:
            self._temp = Path(tempfile.mkdtemp(prefix=f"qnas-{self.task.task_type}{self.task.task_index}-"))
            atexit.register(shutil.rmtree, self._temp, True)
        return self._temp

    def worker_folder(self, folder: str | Path, resume: bool) -> Path:
        """Where this process writes the run: ``folder`` for the chief; for a non-chief a temporary folder, which
        starts as a copy of ``folder`` when resuming (so every worker restores the chief's checkpoint) and is
        removed when the process exits."""
        if self.is_chief:
            return Path(folder)
        private = self._private_folder() / "run"
        if resume and Path(folder).is_dir():
            shutil.copytree(folder, private, dirs_exist_ok=True)
        private.mkdir(parents=True, exist_ok=True)
        return private

    def worker_cache(self, cache_dir: str | Path) -> str:
        """The float-parent cache: the chief's; a non-chief reads a copy of it and writes only into its own."""
        if self.is_chief:
            return str(cache_dir)
        private = self._private_folder() / "cache"
        if Path(cache_dir).is_dir():
            shutil.copytree(cache_dir, private, dirs_exist_ok=True)
        return str(private)

    # ------------------------------------------------------------------ agreement
    def check_same(self, value: float, what: str) -> None:
        """Refuse to go on when the workers disagree on ``value`` (a resume that found different checkpoints
        would otherwise hang or train on mismatched weights)."""
        if self.task is None or self.num_workers < 2:
            return
        mine = tf.constant([float(value)], tf.float64)
        every = tf.function(lambda: self.strategy.gather(self.strategy.run(tf.identity, args=(mine,)), axis=0))()
        every = every.numpy()
        if every.min() != every.max():
            raise UserInputError(f"the workers disagree on {what} ({sorted(set(every.tolist()))}): a resumed "
                                 f"multi-worker run needs the chief's output folder readable by every worker "
                                 f"(shared storage, or a copy at the same path)")

    def local_copy(self, model: tf.keras.Model) -> tf.keras.Model:
        """A plain copy of a model trained under the strategy, compiled with its loss and an accuracy metric.

        Every worker must call it (reading BatchNorm's moving statistics reduces them across workers);
        the copy then needs no other worker, so the chief alone can evaluate and export it.
        """
        if self.strategy is None:
            return model
        weights = model.get_weights()
        copy = tf.keras.models.clone_model(model)
        copy.set_weights(weights)
        copy.compile(loss=model.loss, metrics=["accuracy"])
        return copy


# ---------------------------------------------------------------------- custom training steps
def data_parallel_grads(strategy: tf.distribute.Strategy, grads_fn: Callable) -> Callable:
    """``grads_fn(x, y, *args, weight=w) -> (loss, logits, grads)`` run data-parallel, as one ``tf.function``.

    ``grads_fn`` differentiates ``w`` times the mean loss of its batch. Each replica takes a contiguous
    slice of the global batch ``x, y`` (every worker holds the same batch) with ``w`` its share of the
    batch, so the losses and gradients summed over replicas are the global batch's mean loss and its
    gradients (also through statistics reduced across replicas, such as ``global_moments``). The logits
    of every slice are gathered back in batch order. The reduced values are returned as plain tensors.
    """

    def replica(x: tf.Tensor, y: tf.Tensor, *args):
        ctx = tf.distribute.get_replica_context()
        n, index, replicas = tf.shape(x)[0], ctx.replica_id_in_sync_group, ctx.num_replicas_in_sync
        lo, hi = n * index // replicas, n * (index + 1) // replicas
        share = tf.cast(hi - lo, tf.float32) / tf.cast(n, tf.float32)
        loss, logits, grads = grads_fn(x[lo:hi], y[lo:hi], *args, weight=share)
        loss, *grads = ctx.all_reduce(tf.distribute.ReduceOp.SUM, [loss, *grads])
        return loss, ctx.all_gather(logits, axis=0), grads

    def step(x: tf.Tensor, y: tf.Tensor, *args):
        out = strategy.run(replica, args=(x, y, *args))
        return tf.nest.map_structure(lambda value: strategy.experimental_local_results(value)[0], out)

    return tf.function(step, reduce_retracing=True)


def apply_on_every_replica(strategy: tf.distribute.Strategy, optimizer: tf.keras.optimizers.Optimizer,
                           grads: list[tf.Tensor], variables: list[tf.Variable]) -> None:
    """Apply gradients that are already reduced across replicas to ``variables`` only, on every replica.

    Eager, so the variables may differ from step to step (a child uses a subset of the shared weights)
    without a new trace each time.
    """
    strategy.run(lambda *g: optimizer.apply_gradients(zip(g, variables), experimental_aggregate_gradients=False),
                 args=tuple(grads))


def global_moments(z: tf.Tensor, axes: list[int]) -> tuple[tf.Tensor, tf.Tensor]:
    """Mean and variance of ``z`` over ``axes``; inside a replica of a data-parallel step, over the whole global
    batch (every replica's slice), so a distributed step normalises exactly as the one-device step does."""
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return tf.nn.moments(z, axes)
    count = tf.cast(tf.reduce_prod(tf.gather(tf.shape(z), axes)), z.dtype)
    count, total = ctx.all_reduce(tf.distribute.ReduceOp.SUM, [count, tf.reduce_sum(z, axes)])
    mean = total / count
    squares = ctx.all_reduce(tf.distribute.ReduceOp.SUM,
                             tf.reduce_sum(tf.math.squared_difference(z, tf.stop_gradient(mean)), axes))
    return mean, squares / count


# ---------------------------------------------------------------------- strategies
class _QuietEagerRun(logging.Filter):
    """Drops TensorFlow's notice that running a strategy eagerly has overhead: ``apply_on_every_replica`` does so
    on purpose (its variables change from step to step) while the heavy part of the step is compiled."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "eagerly has significant overhead" not in record.getMessage()


def configure_cpu_devices(count: int) -> list[str]:
    """The names of ``count`` logical CPU devices, splitting the CPU if TensorFlow has not started yet."""
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError:  # the runtime has started: its devices can no longer change
        pass
    logical = tf.config.list_logical_devices("CPU")
    if len(logical) < count:
        raise UserInputError(f"--replicas {count}: TensorFlow has already started with {len(logical)} CPU device(s); "
                             f"the CPU must be split before anything else runs (start a new process)")
    return [device.name for device in logical[:count]]


def make_distribution(mode: str = "none", replicas: int | None = None,
                      environ: dict[str, str] | None = None) -> Distribution:
    """The ``Distribution`` of ``--distribute mode`` (see the module docstring); call it before TensorFlow runs."""
    check_distribute_flags(mode, replicas)
    if mode == "none":
        return Distribution()
    tf.get_logger().addFilter(_QuietEagerRun())
    if mode == "mirrored":
        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            if replicas is not None and replicas > len(gpus):
                raise UserInputError(f"--replicas {replicas}: only {len(gpus)} GPU(s) are visible")
            devices = [f"/gpu:{i}" for i in range(replicas or len(gpus))]
        elif replicas is None:
            raise UserInputError("--distribute mirrored: no GPU is visible; pass --replicas N to split the CPU into "
                                 "N logical devices")
        else:
            devices = configure_cpu_devices(replicas)
        key = ("mirrored", *devices)
        if key not in _STRATEGIES:
            _STRATEGIES[key] = tf.distribute.MirroredStrategy(devices=devices)
        return Distribution(_STRATEGIES[key])
    task = parse_tf_config((os.environ if environ is None else environ).get("TF_CONFIG"))
    if ("multi_worker",) not in _STRATEGIES:
        try:
            _STRATEGIES[("multi_worker",)] = tf.distribute.MultiWorkerMirroredStrategy()
        except (RuntimeError, ValueError) as err:
            raise UserInputError(f"--distribute multi_worker could not start ({err}); the strategy must be created "
                                 f"before TensorFlow runs anything, in a fresh process") from None
    return Distribution(_STRATEGIES[("multi_worker",)], task)


def local_cluster(workers: int) -> dict[str, list[str]]:
    """A cluster of ``workers`` tasks on this machine's loopback interface, on ports free right now."""
    ports = []
    with contextlib.ExitStack() as stack:
        for _ in range(workers):
            sock = stack.enter_context(socket.socket())
            sock.bind(("localhost", 0))
            ports.append(sock.getsockname()[1])
    return {"worker": [f"localhost:{port}" for port in ports]}


def worker_env(cluster: dict[str, list[str]], task_type: str, index: int,
               base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of one task of ``cluster``: ``base`` (default: this process's) plus its TF_CONFIG."""
    env = dict(os.environ if base is None else base)
    env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})
    return env
