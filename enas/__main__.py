"""``python -m enas "256 1 128 2" --space mlp``: show an architecture in both forms and larq's summary."""
from __future__ import annotations

import argparse
import sys

from qnas.arch import parse_arch
from qnas.errors import UserInputError
from qnas.spaces import SPACES, get_space

KNOWN_SHAPES = {"mnist": ((28, 28, 1), 10), "fashion_mnist": ((28, 28, 1), 10)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m enas", description=__doc__)
    parser.add_argument("arch", help="architecture string, e.g. '256 1 128 2' or '256:binary 128:ternary'")
    parser.add_argument("--space", default="mlp", choices=sorted(SPACES))
    parser.add_argument("--dataset", default="mnist", choices=sorted(KNOWN_SHAPES))
    parser.add_argument("--data", help="local .npz / IDX folder: its image shape and class count are used")
    args = parser.parse_args(argv)
    try:
        space = get_space(args.space)
        arch = parse_arch(args.arch, space)
        if args.data:
            from qnas.data import load_dataset

            data = load_dataset(data_path=args.data)
            shape, classes = data.input_shape, data.num_classes
        else:
            shape, classes = KNOWN_SHAPES[args.dataset]
        import larq as lq

        from qnas.models import arch_bits, build_model
        from quantize.size import SizeReport

        model = build_model(space, arch, shape, classes)
        parent = arch_bits(space, space.parent_arch(), shape, classes)
        report = SizeReport(arch_bits(space, arch, shape, classes), parent)
    except UserInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"architecture: {arch.to_string()}\nreadable:     {arch.readable()}")
    lq.models.summary(model)
    print(f"size: {report.kib:.2f} KiB = {report.ratio:.4f} of the float parent ({space.parent_arch().to_string()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
