"""``python -m ecomp_tf.compress``: prune or rank-reduce one layer of a trained model, fine-tune, report.

    python -m ecomp_tf.compress prune --space mlp --layer h0 --fraction 0.5 --data ../shared/data/mnist-10k.npz
    python -m ecomp_tf.compress rank --model my_model.keras --layer dense_1 --keep 64 --data ...

The model is a saved Keras model (``--model``) or the space's cached float parent (``--space``).
Prints the test accuracy before compression, right after it and after each fine-tuning epoch,
with the parameter counts; ``--json`` writes the same as a result file (command, versions, seed)
and ``--output`` saves the compressed model.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

OPERATIONS = ("prune", "rank")
METHODS = ("contribution", "l1", "activation", "random")


def evaluate_accuracy(model, data) -> float:
    """Accuracy on the test split (argmax of the outputs; probabilities or logits alike)."""
    pred = model.predict(data.x_test, batch_size=1000, verbose=0)
    return float((pred.argmax(axis=-1) == data.y_test).mean())


def fine_tune(model, data, epochs: int, lr: float, batch_size: int = 100, seed: int = 0,
              log: Callable[[str], None] = print, on_epoch: Callable[[int], None] | None = None) -> None:
    """A few epochs of Adam on the training split (seeded order), in place."""
    import numpy as np
    import tensorflow as tf

    from qnas.contribution import outputs_probabilities

    loss = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=not outputs_probabilities(model))
    model.compile(optimizer=tf.keras.optimizers.legacy.Adam(lr), loss=loss)
    for epoch in range(epochs):
        order = np.random.default_rng([seed, epoch]).permutation(len(data.x_train))
        hist = model.fit(data.x_train[order], data.y_train[order], batch_size=batch_size, epochs=1,
                         shuffle=False, verbose=0)
        log(f"fine-tune epoch {epoch + 1}/{epochs}: loss {hist.history['loss'][0]:.4f}")
        if on_epoch:
            on_epoch(epoch + 1)


def compress_model(model, data, operation: str, layer: str, keep: int | None = None, fraction: float | None = None,
                   method: str = "l1", refit: bool = False, fine_tune_epochs: int = 1, lr: float = 1e-4,
                   sample: int = 2000, seed: int = 0, log: Callable[[str], None] = print) -> tuple[Any, dict]:
    """Compress one layer, fine-tune, and return the new model and a report of accuracies and sizes.

    ``operation`` ``"prune"`` keeps ``keep`` units (or removes ``fraction`` of them) chosen by
    ``method`` (``refit`` re-solves the next layer by least squares); ``"rank"`` projects the layer
    onto its top principal output directions. Statistics use ``sample`` training images.
    """
    import numpy as np

    from ecomp_tf.rank import rank_reduce
    from qnas.errors import UserInputError
    from qnas.prune import keep_units, resolve_linear, width
    from qnas.seeding import seed_everything
    from qnas.warmstart import select_units

    if operation not in OPERATIONS:
        raise UserInputError(f"unknown operation {operation!r}; expected one of {', '.join(OPERATIONS)}")
    seed_everything(seed)
    lay = resolve_linear(model, layer)
    total = width(lay)
    if (keep is None) == (fraction is None):
        raise UserInputError("give exactly one of keep (units/rank to keep) and fraction (share to remove)")
    if fraction is not None:
        if not 0.0 < fraction < 1.0:
            raise UserInputError(f"fraction must be between 0 and 1 (exclusive), got {fraction}")
        keep = max(1, total - round(fraction * total))
    idx = np.random.default_rng(seed).choice(len(data.x_train), size=min(sample, len(data.x_train)), replace=False)
    x_s, y_s = data.x_train[np.sort(idx)], data.y_train[np.sort(idx)]
    report: dict[str, Any] = {"operation": operation, "layer": lay.name, "width": total, "keep": int(keep),
                              "params_before": int(model.count_params())}
    t0 = time.time()
    report["accuracy_before"] = evaluate_accuracy(model, data)
    log(f"{model.name}: {lay.name} has {total} units; test accuracy {report['accuracy_before']:.4f}")
    if operation == "prune":
        kept = select_units(model, lay.name, int(keep), method=method, x_sample=x_s, y_sample=y_s, seed=seed)
        new = keep_units(model, {lay.name: kept}, refit=x_s if refit else None)
        report.update(method=method, refit=bool(refit))
        what = f"pruned {lay.name} to {keep} units by {method}" + (" with least-squares refit" if refit else "")
    else:
        new = rank_reduce(model, lay.name, int(keep), x_s)
        what = f"rank-reduced {lay.name} to rank {keep} (PCA)"
    report["params_after"] = int(new.count_params())
    report["accuracy_compressed"] = evaluate_accuracy(new, data)
    log(f"{what}: test accuracy {report['accuracy_compressed']:.4f}, parameters {report['params_before']} -> "
        f"{report['params_after']}")
    curve: list[float] = []

    def record(epoch: int) -> None:
        curve.append(evaluate_accuracy(new, data))
        log(f"  after fine-tune epoch {epoch}: test accuracy {curve[-1]:.4f}")

    if fine_tune_epochs > 0:
        fine_tune(new, data, fine_tune_epochs, lr, seed=seed, log=lambda _: None, on_epoch=record)
    report["accuracy_fine_tuned"] = curve
    report.update(fine_tune_epochs=fine_tune_epochs, lr=lr, sample=len(x_s), seconds=round(time.time() - t0, 1))
    return new, report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ecomp_tf.compress", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("operation", choices=OPERATIONS, help="prune units, or reduce the rank by PCA")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="a saved Keras model (.keras / SavedModel) to compress")
    src.add_argument("--space", choices=("mlp", "conv"), help="compress this space's cached float parent")
    parser.add_argument("--layer", required=True, help="Dense/Conv layer name ('h0' means 'h0_linear')")
    amount = parser.add_mutually_exclusive_group(required=True)
    amount.add_argument("--keep", type=int, help="units (prune) or rank (rank) to keep")
    amount.add_argument("--fraction", type=float, help="share of the units / rank to remove, e.g. 0.5")
    parser.add_argument("--method", default="l1", choices=METHODS,
                        help="prune: which units stay: l1 (largest incoming weights; default, best measured on "
                             "trained MNIST nets), contribution (|activation x gradient| on a sample), activation "
                             "(mean |activation|), random")
    parser.add_argument("--refit", action="store_true", help="prune: re-solve the next layer by least squares")
    parser.add_argument("--data", help="local .npz / IDX folder (default: download --dataset through Keras)")
    parser.add_argument("--dataset", default="mnist", help="mnist or fashion_mnist (default: mnist)")
    parser.add_argument("--fine_tune_epochs", type=int, default=1, help="epochs of Adam afterwards (default 1)")
    parser.add_argument("--lr", type=float, default=1e-4, help="fine-tuning learning rate (default 1e-4)")
    parser.add_argument("--sample", type=int, default=2000, help="training images for statistics (default 2000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache_dir", default="cache", help="where --space's float parent is cached")
    parser.add_argument("--output", help="save the compressed, fine-tuned model here (.keras)")
    parser.add_argument("--json", help="write the report (with command, versions, seed) to this file")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from qnas.errors import UserInputError

    log = lambda text: print(text, flush=True)
    try:
        import larq  # noqa: F401  (registers larq's layers and quantizers, so saved larq models load)
        import tensorflow as tf

        from qnas.data import load_dataset
        from qnas.records import run_record, write_json_atomic

        data = load_dataset(args.dataset, args.data, seed=args.seed)
        if args.model:
            try:
                model = tf.keras.models.load_model(args.model, compile=False)
            except (OSError, ValueError) as err:
                raise UserInputError(f"cannot load a Keras model from {args.model!r}: {err}") from None
        else:
            from qnas.parent import get_parent
            from qnas.spaces import get_space

            model = get_parent(get_space(args.space), data, seed=args.seed, cache_dir=args.cache_dir, log=log).model
        new, report = compress_model(model, data, args.operation, args.layer, keep=args.keep, fraction=args.fraction,
                                     method=args.method, refit=args.refit, fine_tune_epochs=args.fine_tune_epochs,
                                     lr=args.lr, sample=args.sample, seed=args.seed, log=log)
    except UserInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.output:
        new.save(args.output)
        log(f"saved {args.output}")
    if args.json:
        write_json_atomic(args.json, {**report, "data": data.name, **run_record(args.seed)})
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
