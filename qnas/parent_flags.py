"""The bring-your-own-parent flags, shared by every CLI (no TensorFlow import: ``--help`` stays fast)."""
from __future__ import annotations

import argparse


def add_parent_flags(parser: argparse.ArgumentParser, use: str, embedding: bool = True) -> None:
    """``--parent``, ``--parent_layout`` and (where a similarity loss is used) ``--emb_layers``."""
    parser.add_argument("--parent", metavar="PATH",
                        help=f"{use} (.keras, .h5, SavedModel folder, or .npz of Dense weights)")
    if embedding:
        parser.add_argument("--emb_layers", help="comma-separated layer names of --parent compared by the "
                                                 "similarity loss (default: each hidden layer's activation)")
    parser.add_argument("--parent_layout", default="in_out", choices=("in_out", "out_in"),
                        help="kernel layout of an .npz --parent: in_out (Keras) or out_in (PyTorch) "
                             "(default %(default)s)")


def emb_layer_names(text: str | None) -> list[str] | None:
    """``"a, b"`` -> ``["a", "b"]``; None or empty -> None (the default layers)."""
    names = [n.strip() for n in (text or "").split(",") if n.strip()]
    return names or None
