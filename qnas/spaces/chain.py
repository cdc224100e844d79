"""The two spaces of chained layers: ``mlp`` (Dense layers, EComp's setting) and ``conv`` (3x3 convolutions)."""
from __future__ import annotations

from qnas.space import SearchSpace, register_space

register_space(SearchSpace(
    name="mlp", kind="dense", num_layers=2, widths=(16, 32, 64, 128, 256, 512),
    min_width=4, max_width=4096, float_batchnorm=False, parent_widths=(256, 256),
))
register_space(SearchSpace(
    name="conv", kind="conv", num_layers=4, widths=(8, 16, 32, 64, 128),
    min_width=4, max_width=1024, float_batchnorm=True, parent_widths=(32, 64, 128),
))
