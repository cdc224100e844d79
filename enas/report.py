"""The accuracy-vs-size picture of a search: every architecture it scored, with the Pareto front marked.

    python -m enas.report runs/search/conv-controller-seed0      # writes pareto.png and prints the front

Also used by ``search_arc_mnist.py --plot`` and the benchmarks.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from enas.search import read_rows


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats: smaller size (first) and higher accuracy (second)."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best_acc = [], -np.inf
    for i in order:
        if points[i][1] > best_acc:
            front.append(i)
            best_acc = points[i][1]
    return front


def read_evaluations(run_dir: str | Path) -> dict[str, dict]:
    """One row per architecture a search evaluated.

    A score on the whole validation split (phases ``shown`` and ``final``) wins over scores on
    minibatches: the latest full score is kept, else the mean of the minibatch scores (never the
    luckiest minibatch, which would flatter the front). A finalist's score after training alone
    (``alone_steps``) is left out: only the finalists have one, so it would flatter them.
    """
    path = Path(run_dir) / "evaluations.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: is {run_dir} a search output folder?")
    full: dict[str, dict] = {}
    batch: dict[str, list[dict]] = {}
    for row in read_rows(path):
        if row.get("alone_steps"):
            continue
        if row["phase"] in ("shown", "final"):
            full[row["arch"]] = row
        else:
            batch.setdefault(row["arch"], []).append(row)
    means = {arch: {**rows[-1], "acc": float(np.mean([r["acc"] for r in rows]))} for arch, rows in batch.items()}
    return {**means, **full}


def plot_front(rows: Iterable[dict], path: str | Path, title: str, label: str = "evaluated",
               extra: dict[str, list[dict]] | None = None) -> list[dict]:
    """Scatter accuracy against KiB (log scale), front as a line; returns the front's rows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    fronts = {}
    for name, series in {label: list(rows), **(extra or {})}.items():
        points = [(r["kib"], r["acc"]) for r in series]
        front = [series[i] for i in pareto_front(points)]
        fronts[name] = front
        dots = ax.scatter([p[0] for p in points], [p[1] for p in points], s=10, alpha=0.35)
        ax.plot([r["kib"] for r in front], [r["acc"] for r in front], "-o", ms=4, color=dots.get_facecolor()[0],
                alpha=1.0, label=f"{name} (front of {len(points)})")
    ax.set_xscale("log")
    ax.set_xlabel("model size (KiB, log scale)")
    ax.set_ylabel("validation accuracy")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return fronts[label]


def report(run_dir: str | Path) -> tuple[Path, list[dict]]:
    """Write ``pareto.png`` into a search folder; return its path and the front."""
    rows = list(read_evaluations(run_dir).values())
    out = Path(run_dir) / "pareto.png"
    front = plot_front(rows, out, f"{Path(run_dir).name}: {len(rows)} architectures")
    return out, front


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m enas.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", help="a search output folder (holds evaluations.jsonl)")
    args = parser.parse_args(argv)
    try:
        out, front = report(args.run_dir)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {out}\nPareto front (smallest first):")
    for row in front:
        print(f"  {row['kib']:9.2f} KiB  acc {row['acc']:.4f}  [{row['arch']}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
