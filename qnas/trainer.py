"""Retrain one architecture to convergence and hand back a deployable model (the library behind ``train_arc.py``).

The recipe, chosen for quantized nets: Adam (the legacy Keras optimizer, which larq's optimizers
also build on) with a one-epoch linear warm-up and a cosine decay to zero over ``max_epochs``;
after every epoch BatchNorm's moving statistics are re-estimated at the current weights (see
``BatchNormCalibrator``), then early stopping on validation accuracy with ``patience``; the best
epoch's weights are restored (or, with ``keep="last"``, the whole schedule runs and its last epoch is kept)
and the test split is evaluated exactly once, at the end.

A run lives in one output folder::

    INCOMPLETE          present until the run has finished (result.json is then written last)
    run_config.json     the settings a resumed run must share
    checkpoints/        every epoch: weights, optimizer, epoch, early-stopping state, history, RNG
    best/               the weights of the best epoch so far
    tensorboard/        per-epoch scalars, the architecture as text, hparams
    model.keras         the trained model (reload with ``qnas.export.load_model``)
    model.tflite        the deployment target's file (``qnas.targets``; default: Larq Compute Engine when installed)
    result.json         metrics, sizes, provenance: written atomically, at the very end

Resuming is exact: the data order of epoch ``e`` is a pure function of ``(seed, e)``, the learning
rate a pure function of the optimizer's step counter, and everything else that changes is in the
checkpoint, so an interrupted run continued with ``resume=True`` ends with the same weights as an
uninterrupted one.
"""
from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import larq as lq
import numpy as np
import tensorflow as tf

from qnas.augment import epoch_images, standardize_colour
from qnas.batchnorm_calibration import BatchNormCalibrator
from qnas.checkpoints import folder_write_problem
from qnas.data import Dataset, load_dataset
from qnas.distill import DistillConfig, make_distiller
from qnas.distribute import Distribution, make_distribution
from qnas.errors import UserInputError
from qnas.export import load_model, save_model
from qnas.interrupt import StopRequest
from qnas.parent import Parent, probe_batch
from qnas.progress import Console
from qnas.records import run_record, write_json_atomic
from qnas.run_folder import INCOMPLETE, RunFolder
from qnas.seeding import seed_everything
from qnas.space import AnyArchitecture, Space
from qnas.spaces import get_space
from qnas.targets.deploy import deploy_model, format_deploy, resolve_target, summary_line
from qnas.tensorboard_logging import RunLogger
from qnas.train_state import TrainState
from qnas.user_parent import resolve_parent
from qnas.validation import DataNeeds, check_num_classes, check_seed, conv_min_side
from qnas.warmstart import init_from_parent
from quantize.size import SizeReport, model_macs

INIT_CHOICES = ("random", "parent")
KEEP_CHOICES = ("best", "last")
# Settings that change the result: a resumed run must use the same ones.
RESUME_KEYS = ("arch", "space", "dataset", "data_path", "max_epochs", "batch_size", "seed", "init",
               "lr", "warmup_epochs", "patience", "val_fraction", "parent", "num_classes",
               "augment")
RESUME_KEYS += ("distill",)
CHECK_SAMPLES = 256  # test images used to check the reloaded model (the deployed file is checked on all)
BN_CALIBRATION_SAMPLES = 2000  # training images whose batch statistics become BatchNorm's moving statistics


def default_init(parent: str | None) -> str:
    """``--init`` when not given: warm-start from the user's ``--parent`` when there is one, else random weights."""
    return "parent" if parent else "random"


@dataclass
class TrainConfig:
    """Everything that defines one training run (the CLI's flags)."""

    arch: str
    space: str = "mlp"
    dataset: str = "mnist"
    data_path: str | None = None
    max_epochs: int = 30
    batch_size: int = 100
    seed: int = 0
    output_dir: str | None = None
    resume: bool = False
    init: str | None = None  # "random" or "parent" (warm start); None: "parent" when ``parent`` is given
    lr: float = 3e-3
    warmup_epochs: int = 1
    patience: int = 10
    val_fraction: float = 0.1
    cache_dir: str = "cache"
    tflite: bool = True
    target: str | None = None  # deployment target of model.tflite (None: the best installed; see qnas.targets)
    parent: str | None = None  # a user's trained model: warm start (init "parent") and/or teacher (``distill``)
    parent_layout: str = "in_out"
    num_classes: int | None = None  # None: the largest label + 1
    distribute: str = "none"  # none | mirrored | multi_worker (qnas.distribute); may change on --resume
    replicas: int | None = None  # mirrored: GPUs to use, or logical CPU devices where there is no GPU
    distill: DistillConfig | None = None  # also learn from the parent (cached float parent, or --parent)
    augment: bool | None = None  # shifts (and flips of colour images); None: on (bench_augment.py measured it)
    keep: str = "best"  # "best": the best validation epoch, early stopping; "last": the whole schedule's end

    def __post_init__(self) -> None:
        if self.init is None:
            self.init = default_init(self.parent)

    def validate(self) -> None:
        """Refuse settings that cannot work, saying what is expected."""
        checks = [
            (self.max_epochs >= 1, f"--max_epochs must be at least 1, got {self.max_epochs}"),
            (self.batch_size >= 1, f"--batch_size must be at least 1, got {self.batch_size}"),
            (self.patience >= 1, f"--patience must be at least 1 epoch, got {self.patience}"),
            (self.warmup_epochs >= 0, f"TrainConfig.warmup_epochs must be 0 or more, got {self.warmup_epochs}"),
            (self.lr > 0 and math.isfinite(self.lr), f"--lr must be a positive number, got {self.lr}"),
            (self.init in INIT_CHOICES, f"unknown --init {self.init!r}; expected one of {list(INIT_CHOICES)}"),
            (self.keep in KEEP_CHOICES, f"unknown --keep {self.keep!r}; expected one of {list(KEEP_CHOICES)}"),
            (0.0 < self.val_fraction < 1.0,
             f"TrainConfig.val_fraction must be between 0 and 1 (exclusive), got {self.val_fraction}"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserInputError(message)
        if self.parent and self.init == "random" and self.distill is None:
            raise UserInputError("--parent with --init random leaves the parent unused: add --distill (it teaches the "
                                 "randomly initialised network) or drop --init random (it warm-starts from it)")
        check_seed(self.seed)
        check_num_classes(self.num_classes)
        if self.distill is not None:
            self.distill.validate()

    def effective_warmup(self) -> int:
        """Warm-up epochs actually used: at most ``max_epochs - 1``, so a one-epoch run has none."""
        return min(self.warmup_epochs, self.max_epochs - 1)

    def identity(self, arch: AnyArchitecture) -> dict[str, Any]:
        """The settings a resumed run must share, in canonical form."""
        values = asdict(self)
        values["arch"] = arch.to_string()
        values["data_path"] = str(Path(self.data_path).resolve()) if self.data_path else None
        values["distill"] = str(self.distill) if self.distill else None  # one string: an hparam, compared on resume
        keys = RESUME_KEYS + (("keep",) if self.keep != "best" else ())  # runs from before --keep kept the best
        return {key: values[key] for key in keys}


def default_output_dir(config: TrainConfig, arch: AnyArchitecture) -> Path:
    """``runs/train_arc/<space>-<arch with underscores>-<data>-seed<S>``."""
    data = Path(config.data_path).stem if config.data_path else config.dataset
    return Path("runs") / "train_arc" / f"{config.space}-{'_'.join(arch.to_string().split())}-{data}-seed{config.seed}"


class TrainingInterrupted(Exception):
    """Training stopped by Ctrl-C; the last finished epoch's checkpoint is intact."""

    def __init__(self, output_dir: Path, epochs_done: int):
        super().__init__(f"training interrupted after {epochs_done} finished epoch(s); "
                         f"the checkpoint is in {output_dir / 'checkpoints'}")
        self.output_dir = output_dir
        self.epochs_done = epochs_done


@dataclass
class TrainResult:
    """A finished run: the trained model (best epoch), the result record, and where files went."""

    model: tf.keras.Model
    record: dict[str, Any]
    output_dir: Path
    files: dict[str, str] = field(default_factory=dict)

    @property
    def test_accuracy(self) -> float:
        return float(self.record["metrics"]["test_accuracy"])


def learning_rate_schedule(lr: float, steps_per_epoch: int, max_epochs: int,
                           warmup_epochs: int) -> tf.keras.optimizers.schedules.LearningRateSchedule:
    """Linear warm-up from lr/10 to ``lr`` over ``warmup_epochs``, then cosine decay to 0 at ``max_epochs``."""
    warmup = warmup_epochs * steps_per_epoch
    return tf.keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=lr / 10 if warmup else lr, decay_steps=max_epochs * steps_per_epoch - warmup,
        warmup_target=lr if warmup else None, warmup_steps=warmup,
    )


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The shuffle of epoch ``epoch``: a function of (seed, epoch) only, so resumed runs repeat it."""
    return np.random.default_rng([int(seed), int(epoch)]).permutation(n)


class _Progress(tf.keras.callbacks.Callback):
    """The epoch's step, loss and accuracy on the console's status line (terminals only)."""

    def __init__(self, console: Console, epoch: int, max_epochs: int, steps: int):
        super().__init__()
        self.console, self.prefix, self.steps = console, f"epoch {epoch}/{max_epochs}", steps

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if batch % 5 == 0 or batch + 1 == self.steps:
            logs = logs or {}
            self.console.status(f"  {self.prefix}  step {batch + 1}/{self.steps}  loss {logs.get('loss', 0):.4f}"
                                f"  acc {logs.get('accuracy', 0):.4f}")

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.console.clear()


def train_architecture(config: TrainConfig, log: Callable[[str], None] | None = None,
                       callbacks: Sequence[tf.keras.callbacks.Callback] = (),
                       progress: bool | None = None, command: str | None = None) -> TrainResult:
    """Train ``config.arch`` to convergence, save everything into the output folder, return the result.

    Raises ``UserInputError`` for bad settings, data or output folder (before anything is written
    where possible) and ``TrainingInterrupted`` on Ctrl-C. ``callbacks`` are extra Keras callbacks
    for every epoch's ``fit`` (tests use one to simulate an interruption); ``command`` is the command
    line recorded in result.json (default: this process's).
    """
    provenance = {"command": command} if command else {}
    log = log or (lambda text: print(text, flush=True))
    progress = sys.stdout.isatty() if progress is None else progress
    started = time.time()
    config.validate()
    dist = make_distribution(config.distribute, config.replicas)  # first: a cluster needs an untouched runtime
    dist.check_batch(config.batch_size)
    log, progress = dist.quiet(log), progress and dist.is_chief  # the chief reports; non-chiefs write to temp only
    target = resolve_target(config.target)  # an unknown or uninstalled target fails here, before any work
    config.target = target.name
    space = get_space(config.space)
    arch = space.parse(config.arch)
    target.require_space(space)
    if config.init == "parent" and space.family != "chain":
        raise UserInputError(f"--init parent and --parent work for the mlp and conv spaces, not {space.name}")
    num_blocks = len(arch) if space.family == "chain" else 0  # blocks whose outputs feature distillation pairs
    if config.distill and config.distill.features > 0 and not num_blocks:
        raise UserInputError(f"--distill_features pairs chain layers with the parent's; the {space.name} space "
                             f"distils logits only (drop --distill_features)")
    folder = Path(config.output_dir) if config.output_dir else default_output_dir(config, arch)
    folder = dist.worker_folder(folder, config.resume)
    config = replace(config, cache_dir=dist.worker_cache(config.cache_dir))
    run_folder = RunFolder(folder, "run_config.json", subfolders=("checkpoints", "best", "tensorboard"),
                           stale=("tensorboard/events.out.tfevents.*",))
    resuming = run_folder.check(config.resume, {"identity": config.identity(arch)})  # reads only
    use_parent = config.init == "parent"
    if (use_parent or config.distill) and not config.parent and not resuming and folder_write_problem(config.cache_dir):
        raise UserInputError(f"cannot write the float parent to --cache_dir {config.cache_dir}: "
                             f"{folder_write_problem(config.cache_dir)}")
    pools = len(space.pool_after(len(arch))) if space.family == "chain" else 0  # cells adapt to any image
    data, standardisation = standardize_colour(
        load_dataset(config.dataset, config.data_path, config.val_fraction, seed=config.seed,
                     num_classes=config.num_classes,
                     needs=DataNeeds(batch_size=config.batch_size, min_side=conv_min_side(pools),
                                     min_side_reason=f"this architecture's {pools} 2x2 max pooling(s)")))
    init_parent = None
    if (use_parent and not resuming) or config.distill:  # loaded and checked before the folder is claimed
        init_parent = _load_init_parent(space, data, config, log)
    run_folder.claim({"identity": config.identity(arch), **run_record(config.seed, **provenance)}, resuming,
                     config.resume, log, marker=True)
    if config.augment is None:  # after the claim: the identity keeps the setting as given (None: the default)
        config = replace(config, augment=True)

    seed_everything(config.seed)
    tf.random.set_global_generator(tf.random.Generator.from_seed(config.seed))  # checkpointed with the rest
    steps = math.ceil(len(data.x_train) / config.batch_size)
    schedule = learning_rate_schedule(config.lr, steps, config.max_epochs, config.effective_warmup())
    with dist.scope():  # mirrored model and optimizer; fit splits each global batch across the replicas
        model = space.build(arch, data.input_shape, data.num_classes, name="child")
        optimizer = tf.keras.optimizers.legacy.Adam(schedule)
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        optimizer._create_all_weights(model.trainable_variables)  # step counter and slots exist before a restore
        trainee = None  # with --distill, fit trains the model through a Distiller
        if config.distill:
            trainee = make_distiller(model, init_parent, config.distill, num_blocks, config.batch_size)
            trainee.compile(optimizer=optimizer, metrics=["accuracy"])
    state = TrainState(model, optimizer, folder, log=log)
    parent_info = None
    log(f"train_arc: {arch.to_string()} ({arch.readable()}) in space {space.name}; {data.describe()}"
        + (", standardised per channel" if standardisation else "") + (", augmented" if config.augment else "")
        + (f"; {dist.describe()}" if dist.strategy is not None else ""))
    log(f"deployment target: {target.name} ({target.description})")
    lq.models.summary(model, print_fn=log)
    if resuming and state.restore_latest():
        log(f"resuming from {state.restored} (epoch {int(state.epoch.numpy())})")
        if use_parent:
            parent_info = {"source": "initialised from the float parent before the first checkpoint"}
    elif use_parent:
        parent_info = _init_from_parent(model, init_parent or _load_init_parent(space, data, config, log), data, config,
                                        log)
    dist.check_same(int(state.epoch.numpy()), "the number of epochs done")

    tb = RunLogger(folder / "tensorboard")
    stop = StopRequest()
    try:
        with stop:
            tb.start(arch, space.name, {k: v for k, v in config.identity(arch).items()
                                        if k not in ("arch", "space") and v is not None})
            _fit_epochs(model, optimizer, schedule, state, tb, data, config, steps, log, [stop, *callbacks], progress,
                        trainee)
            stop.check()
            return _finish(model, state, tb, space, arch, data, config, folder, parent_info, started, log, provenance,
                           dist, standardisation)
    except KeyboardInterrupt:
        raise TrainingInterrupted(folder, int(state.epoch.numpy())) from None
    finally:
        tb.close()


def _load_init_parent(space: Space, data: Dataset, config: TrainConfig, log: Callable[[str], None]) -> Parent:
    """The parent a warm start copies from or distillation learns from, checked on loading.

    A warm start needs it in this toolkit's layout (a user's Dense/ReLU stack is rebuilt so); a teacher alone
    can be any model that maps these images to these classes.
    """
    return resolve_parent(space, data, config.parent, layout=config.parent_layout, in_space=config.init == "parent",
                          seed=config.seed, cache_dir=config.cache_dir, log=log, emb_flag=False)


def _init_from_parent(model, parent: Parent, data: Dataset, config: TrainConfig,
                      log: Callable[[str], None]) -> dict[str, Any]:
    try:
        init_from_parent(model, parent.model, probe_batch(data, seed=config.seed))
    except ValueError as err:
        raise UserInputError(f"--init parent: {err}") from None
    log(f"initialised from the float parent {parent.source} (test accuracy {parent.test_accuracy:.4f})")
    return {"source": parent.source, "test_accuracy": parent.test_accuracy}


def _fit_epochs(model, optimizer, schedule, state: TrainState, tb: RunLogger, data: Dataset, config: TrainConfig,
                steps: int, log: Callable[[str], None], callbacks: Sequence[tf.keras.callbacks.Callback],
                progress: bool, trainee: tf.keras.Model | None = None) -> None:
    """Run epochs from the checkpointed one until early stopping or ``max_epochs``, checkpointing each."""
    history = state.get_history()
    eval_batch = max(config.batch_size, 500)
    calibrate = BatchNormCalibrator(model, config.batch_size)
    n_calibration = min(len(data.x_train), BN_CALIBRATION_SAMPLES)
    stop = next((c for c in callbacks if isinstance(c, StopRequest)), None)
    while int(state.epoch.numpy()) < config.max_epochs and not bool(state.stopped.numpy()):
        if stop is not None:
            stop.check()
        epoch = int(state.epoch.numpy())  # epochs done so far; this one is epoch + 1
        t0 = time.time()
        lr = float(schedule(optimizer.iterations))
        order = epoch_order(config.seed, epoch, len(data.x_train))
        extra = [_Progress(Console(), epoch + 1, config.max_epochs, steps)] if progress else []
        fit = (trainee or model).fit(epoch_images(data.x_train[order], config.seed, epoch, bool(config.augment)),
                                     data.y_train[order], batch_size=config.batch_size, epochs=1,
                        shuffle=False, verbose=0, callbacks=[*extra, *callbacks])
        calibrate(data.x_train[order[:n_calibration]])
        val_loss, val_acc = model.evaluate(data.x_val, data.y_val, batch_size=eval_batch, verbose=0,
                                           callbacks=[stop] if stop is not None else None)
        row = {"epoch": epoch + 1, "lr": lr, "loss": float(fit.history["loss"][0]),
               "accuracy": float(fit.history["accuracy"][0]), "val_loss": float(val_loss),
               "val_accuracy": float(val_acc)}
        if val_acc >= float(state.best_val.numpy()):  # a tie keeps the later epoch: its learning rate is lower
            state.best_val.assign(float(val_acc))
            state.best_epoch.assign(epoch + 1)
            state.wait.assign(0)
            if config.keep == "best":
                state.save_best()  # before the checkpoint that points at it
        else:
            state.wait.assign_add(1)
        state.stopped.assign(config.keep == "best" and int(state.wait.numpy()) >= config.patience)
        history.append(row)
        state.history.assign(json.dumps(history))
        state.epoch.assign(epoch + 1)
        state.elapsed.assign_add(time.time() - t0)
        tb.epoch(epoch + 1, {"loss/train": row["loss"], "loss/val": row["val_loss"], "accuracy/train": row["accuracy"],
                             "accuracy/val": row["val_accuracy"], "learning_rate": lr})
        state.save()
        log(f"epoch {epoch + 1:3d}/{config.max_epochs}  lr {lr:.2e}  loss {row['loss']:.4f}  acc {row['accuracy']:.4f}"
            f"  val_loss {row['val_loss']:.4f}  val_acc {row['val_accuracy']:.4f}"
            f"  best {float(state.best_val.numpy()):.4f} (epoch {int(state.best_epoch.numpy())})"
            f"  {time.time() - t0:.1f} s")
    if bool(state.stopped.numpy()):
        log(f"early stopping: validation accuracy below its best for {config.patience} epochs")


def _finish(model, state: TrainState, tb: RunLogger, space: Space, arch: AnyArchitecture, data: Dataset,
            config: TrainConfig, folder: Path, parent_info: dict[str, Any] | None, started: float,
            log: Callable[[str], None], provenance: dict[str, Any], dist: Distribution,
            standardisation: dict[str, list[float]] | None = None) -> TrainResult:
    """Restore the best epoch (unless ``keep`` is "last"), test once, export, write result.json last (the chief only)."""
    kept_epoch = int(state.epoch.numpy())
    if config.keep == "last":
        log(f"kept the last epoch's weights (epoch {kept_epoch}, --keep last)")
    elif state.restore_best():
        kept_epoch = int(state.best_epoch.numpy())
        log(f"restored the best epoch ({kept_epoch}, val_acc {float(state.best_val.numpy()):.4f})")
    model = dist.local_copy(model)  # every worker takes part; then the chief alone tests and exports
    if not dist.is_chief:
        return TrainResult(model=model, record={}, output_dir=folder)
    test_loss, test_acc = model.evaluate(data.x_test, data.y_test, batch_size=max(config.batch_size, 500), verbose=0)
    sample = data.x_test[:CHECK_SAMPLES]
    expected = model.predict(sample, batch_size=CHECK_SAMPLES, verbose=0)

    model_path = save_model(model, folder / "model.keras")
    reload_diff = float(np.max(np.abs(load_model(model_path).predict(sample, verbose=0) - expected)))
    deploy = deploy_model(model, space, arch, config.target, folder, data.x_train, data.x_test, log,
                          export=config.tflite, y_test=data.y_test)
    tflite_path = folder / deploy["path"] if deploy["path"] else None
    tflite_info: dict[str, Any] = {"path": str(tflite_path) if tflite_path else None, "skipped": deploy.get("skipped"),
                                   "bytes": deploy["bytes"], "argmax_agreement": deploy["top1_agreement"]}

    parent_space = space.parent_space()
    parent_arch = parent_space.parent_arch()
    size = SizeReport(space.bits(arch, data.input_shape, data.num_classes),
                      parent_space.bits(parent_arch, data.input_shape, data.num_classes))
    macs = model_macs(model)
    history = state.get_history()
    metrics = {
        "test_accuracy": float(test_acc), "test_loss": float(test_loss),
        "best_val_accuracy": float(state.best_val.numpy()), "best_epoch": int(state.best_epoch.numpy()),
        "epochs_run": int(state.epoch.numpy()), "stopped_early": bool(state.stopped.numpy()),
        "kept_epoch": kept_epoch, "kept_val_accuracy": _val_accuracy_at(history, kept_epoch),
    }
    record = {
        "arch": arch.to_string(), "readable": arch.readable(), "space": space.name, "data": data.name,
        "metrics": metrics,
        "size": {**size.as_dict(), "parent_arch": parent_arch.to_string()},
        "macs": {**macs, "binary_share": macs["binary"] / macs["total"] if macs["total"] else 0.0},
        "params": int(model.count_params()),
        "train_seconds": round(float(state.elapsed.numpy()), 1),
        "wall_seconds_this_process": round(time.time() - started, 1),
        "config": asdict(config), "init_parent": parent_info, "input_standardisation": standardisation,
        "files": {"model": model_path.name, "tensorboard": "tensorboard", "checkpoints": "checkpoints",
                  "tflite": deploy["path"]},
        "reload_max_abs_diff": reload_diff, "tflite": tflite_info, "deploy": deploy, "history": history,
        **run_record(config.seed, **provenance),
    }
    tb.final(int(state.epoch.numpy()), {"test_accuracy": metrics["test_accuracy"], "test_loss": metrics["test_loss"],
                                        "best_val_accuracy": metrics["best_val_accuracy"], "kib": size.kib,
                                        "bits_ratio": size.ratio})
    write_json_atomic(folder / "result.json", record)
    (folder / INCOMPLETE).unlink(missing_ok=True)
    files = {"model": str(model_path), "result": str(folder / "result.json"),
             "tensorboard": str(folder / "tensorboard")}
    if tflite_path is not None:
        files["tflite"] = str(tflite_path)
    return TrainResult(model=model, record=record, output_dir=folder, files=files)


def reload_snippet(model_path: str) -> str:
    """One line of Python that reloads the model in a fresh interpreter.

    Legacy Keras must be chosen before TensorFlow (or larq, which imports it) is first imported;
    importing larq then registers its layers and quantizers.
    """
    return (f'import os; os.environ["TF_USE_LEGACY_KERAS"] = "1"; import larq, tensorflow as tf; '
            f"model = tf.keras.models.load_model({str(model_path)!r})")


def _val_accuracy_at(history: list[dict[str, float]], epoch: int) -> float:
    """The validation accuracy logged after ``epoch`` (every epoch run has its row)."""
    return next(row["val_accuracy"] for row in history if row["epoch"] == epoch)


def _epoch_note(m: dict[str, Any], keep: str = "best") -> str:
    """Which epoch's weights were tested, and their validation accuracy."""
    kept = m.get("kept_epoch", m["best_epoch"])  # records from before --keep: the best epoch
    if keep == "last" or kept != m["best_epoch"]:
        why = "--keep last" if keep == "last" else "the best epoch's weights could not be read"
        return (f"last epoch {kept} ({why}), val {m['kept_val_accuracy']:.4f}; the best validation epoch "
                f"was {m['best_epoch']}, {m['best_val_accuracy']:.4f}")
    return (f"best epoch {m['best_epoch']} of {m['epochs_run']}, val {m['best_val_accuracy']:.4f}"
            f"{', stopped early' if m['stopped_early'] else ''}")


def format_result(result: TrainResult) -> str:
    """The final block the CLI prints: accuracy, the deployed file's bytes (the first size a reader meets), the
    theoretical size against the parent's, MACs, parameters, time, files."""
    r, m = result.record, result.record["metrics"]
    macs, size = r["macs"], r["size"]
    tflite = r["tflite"]
    lines = [
        "== result ==",
        summary_line("architecture", f"{r['arch']}  ({r['readable']}), space {r['space']}, data {r['data']}"),
        summary_line("test accuracy", f"{m['test_accuracy']:.4f}  ({_epoch_note(m, r.get('config', {}).get('keep', 'best'))})"),
        *([format_deploy(r["deploy"])] if "deploy" in r else []),
        summary_line("theoretical size", f"{size['kib']:.2f} KiB ({size['bits']:,} bits, larq's count) = "
                                         f"{size['bits_ratio']:.4f} of the float parent {size['parent_arch']} "
                                         f"({size['parent_bits'] / 8192:.2f} KiB)"),
        summary_line("MACs", f"{macs['total']:,} (binary {macs['binary']:,} = {100 * macs['binary_share']:.1f}%)"),
        summary_line("parameters", f"{r['params']:,}"),
        summary_line("wall time", f"{r['train_seconds']:.1f} s training, {r['wall_seconds_this_process']:.1f} s "
                                  f"this process"),
        summary_line("saved", ", ".join(result.files.values())),
        summary_line("reload with", reload_snippet(result.files["model"])),
    ]
    if tflite.get("skipped"):
        lines.append(summary_line("tflite", f"skipped: {tflite['skipped']}"))
    return "\n".join(lines)
