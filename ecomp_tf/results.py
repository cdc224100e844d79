"""What an EComp run leaves on disk: a JSON record, the best network (.keras) and a PNG of its curves.

``run_<i>.json`` holds the provenance (command, versions, seed), the configs, the per-generation
average / best / worst of each objective, and the picked network's test accuracy and size: the
deployment target's predicted ``bytes`` and their ``size_ratio`` to the parent's, and the theoretical
count (``bits``, ``kib``, ``bits_ratio``; no file is that size). ``summary.json`` aggregates the runs of one
experiment (mean and spread); its ``kib`` and ``size_ratio`` are the target's.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ecomp_tf.evolution import RunResult
from qnas.records import run_record, write_json_atomic
from quantize.size import SizeReport

CURVES = (("fitness", "fitness"), ("accuracy", "batch accuracy"), ("similarity", "similarity loss"),
          ("compression", "compression term (fraction kept)"), ("size_ratio", "size on the target / parent's"))


def run_payload(result: RunResult, experiment: str, run_index: int, data_name: str) -> dict[str, Any]:
    """The JSON record of one run."""
    size = SizeReport(result.bits, result.parent["bits"])
    return {
        **run_record(result.seed, experiment=experiment, run=run_index),
        "data": data_name,
        "configs": result.configs.as_dict(),
        "parent": result.parent,
        "generations": result.history,
        "best": {
            "arch": result.best.arch.to_string(), "readable": result.best.arch.readable(),
            "test_accuracy": round(result.test_accuracy, 5), "mean_fitness": round(result.best_fitness, 5),
            **size.as_dict(), "width_ratio": round(result.width_ratio, 5),
            "target": result.target, "bytes": result.bytes, "size_ratio": round(result.size_ratio, 5),
        },
        "final_population": result.population,
        "seconds": result.seconds,
    }


def save_run(result: RunResult, out_dir: str | Path, experiment: str, run_index: int,
             data_name: str = "") -> dict[str, Path]:
    """Write ``run_<i>.json``, ``run_<i>.keras`` and ``run_<i>.png`` under ``out_dir``; return their paths."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {kind: folder / f"run_{run_index}.{kind}" for kind in ("json", "keras", "png")}
    payload = run_payload(result, experiment, run_index, data_name)
    payload["best"]["model_path"] = str(paths["keras"])
    result.model.save(paths["keras"])
    plot_run(payload, paths["png"])
    write_json_atomic(paths["json"], payload)
    return paths


def summarize(payloads: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean, standard deviation, min and max of test accuracy, sizes and run time over runs.

    ``kib`` and ``size_ratio`` are the deployment target's predicted file size (``target``) and its ratio to
    the parent's; ``bits_ratio`` is the theoretical count's.
    """
    def stats(values: list[float]) -> dict[str, float]:
        arr = np.asarray(values, np.float64)
        return {"mean": float(arr.mean()), "std": float(arr.std()), "min": float(arr.min()), "max": float(arr.max())}

    return {
        "runs": len(payloads),
        "target": payloads[0]["best"]["target"],
        "test_accuracy": stats([p["best"]["test_accuracy"] for p in payloads]),
        "kib": stats([p["best"]["bytes"] / 1024 for p in payloads]),
        "size_ratio": stats([p["best"]["size_ratio"] for p in payloads]),
        "bits_ratio": stats([p["best"]["bits_ratio"] for p in payloads]),
        "width_ratio": stats([p["best"]["width_ratio"] for p in payloads]),
        "seconds": stats([p["seconds"]["total"] for p in payloads]),
        "archs": [p["best"]["readable"] for p in payloads],
    }


def plot_run(payload: dict[str, Any], path: str | Path) -> None:
    """Curves (average, best, worst per generation) and the final accuracy-vs-size scatter, as one PNG."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, grid = plt.subplots(2, 3, figsize=(13, 7))
    axes = grid.ravel()
    for ax, (key, label) in zip(axes, CURVES):
        series = payload["generations"][key]
        gens = np.arange(1, len(series["avg"]) + 1)
        ax.fill_between(gens, series["worst"], series["best"], alpha=0.25, label="best..worst")
        ax.plot(gens, series["avg"], label="average")
        ax.plot(gens, series["best"], lw=0.8, label="best")
        ax.set_xlabel("generation")
        ax.set_title(label)
    axes[0].legend(fontsize=7)
    ax = axes[-1]
    for group, marker in (("population", "."), ("candidate", "x")):
        pts = [p for p in payload["final_population"] if p["group"] == group]
        if pts:
            ax.scatter([p["size_ratio"] for p in pts], [p["val_accuracy"] for p in pts], marker=marker, s=16,
                       label="last population" if group == "population" else "final candidates")
    picked = [p for p in payload["final_population"] if p["picked"]]
    if picked:
        ax.scatter([picked[0]["size_ratio"]], [picked[0]["val_accuracy"]], marker="*", s=140, c="red",
                   label=f"picked (test {payload['best']['test_accuracy']:.3f})")
    ax.axhline(payload["parent"]["test_accuracy"], ls="--", lw=0.8, c="gray", label="parent (test)")
    ax.set_xlabel(f"size on {payload['best']['target']} / parent's")
    ax.set_ylabel("validation accuracy")
    ax.set_title("final population")
    ax.legend(fontsize=7)
    fig.suptitle(f"EComp {payload.get('experiment', '')} run {payload.get('run', '')} "
                 f"({payload['configs'].get('COMPRESSION')}, {payload['configs'].get('SELECTION')})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
