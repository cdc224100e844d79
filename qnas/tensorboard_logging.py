"""TensorBoard logs of one training run: per-epoch scalars, the architecture as text, and hparams.

The hparams plugin gets one HParam per knob (space, seed, batch size, ...) and the architecture's own
values (a width and a type per layer, ``layer1_width``, ``layer1_type``, ...; or each micro node's inputs
and operations), so runs of different architectures can be
compared in its table; the final metrics are written as ``final/...`` scalars, which the plugin reads.
``read_scalars`` reads the logs back (tests use it; so can anyone comparing runs without TensorBoard).
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path

import tensorflow as tf
from tensorboard.plugins.hparams import api as hp

from qnas.space import AnyArchitecture

HParamValue = bool | int | float | str
FINAL_METRICS = ("test_accuracy", "test_loss", "best_val_accuracy", "kib", "bits_ratio")


def arch_hparams(arch: AnyArchitecture) -> dict[str, HParamValue]:
    """The architecture's own hparams: a width and a type per layer, or each node's inputs and operations."""
    return arch.hparams()


class RunLogger:
    """Writes one run's TensorBoard events into ``logdir`` (appending when a run resumes)."""

    def __init__(self, logdir: str | Path):
        self.logdir = Path(logdir)
        self.writer = tf.summary.create_file_writer(str(self.logdir))

    def start(self, arch: AnyArchitecture, space_name: str, hparams: Mapping[str, HParamValue]) -> None:
        """Record the architecture (text) and the run's hyperparameters (hparams plugin)."""
        values = {**hparams, "space": space_name, "arch": arch.to_string(), **arch_hparams(arch)}
        with self.writer.as_default():
            hp.hparams_config(
                hparams=[hp.HParam(name) for name in values],
                metrics=[hp.Metric(f"final/{name}") for name in FINAL_METRICS]
                + [hp.Metric("accuracy/val"), hp.Metric("accuracy/train")],
            )
            hp.hparams(values, trial_id=f"{space_name}:{arch.to_string()}")
            tf.summary.text("architecture", f"`{arch.to_string()}` ({arch.readable()}), space `{space_name}`\n\n"
                            f"{arch.table()}", step=0)
        self.writer.flush()

    def epoch(self, epoch: int, scalars: Mapping[str, float]) -> None:
        """Scalars of one finished epoch (1-based ``epoch`` as the step)."""
        with self.writer.as_default():
            for tag, value in scalars.items():
                tf.summary.scalar(tag, float(value), step=epoch)
        self.writer.flush()

    def final(self, step: int, metrics: Mapping[str, float]) -> None:
        """The run's final metrics, as ``final/NAME`` scalars the hparams table shows."""
        self.epoch(step, {f"final/{name}": value for name, value in metrics.items()})

    def close(self) -> None:
        self.writer.close()


def read_scalars(logdir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in the event files under ``logdir``: ``{tag: [(step, value), ...]}`` in file order."""
    out: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for events_file in sorted(Path(logdir).rglob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(events_file)):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "scalars":
                    out[value.tag].append((int(event.step), float(tf.make_ndarray(value.tensor))))
    return dict(out)


def read_text(logdir: str | Path, tag: str) -> list[str]:
    """Text summaries with ``tag`` under ``logdir`` (the architecture, for instance)."""
    texts = []
    for events_file in sorted(Path(logdir).rglob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(events_file)):
            for value in event.summary.value:
                if value.tag == tag:
                    texts.append(tf.make_ndarray(value.tensor).item().decode())
    return texts


def has_hparams(logdir: str | Path) -> bool:
    """Whether the hparams plugin's session data is present under ``logdir``."""
    for events_file in Path(logdir).rglob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(events_file)):
            if any(v.metadata.plugin_data.plugin_name == "hparams" for v in event.summary.value):
                return True
    return False
