"""The ``se-numpy`` command (also ``python -m se_numpy``).

    se-numpy demo          train a plain and an SE ResNet on the embedded data, compare
    se-numpy train         train a model from the registry (see --help)
    se-numpy evaluate      evaluate a run directory or checkpoint
    se-numpy gradcheck     check every differentiable operation against finite differences
    se-numpy models        parameters and GFLOPs of the paper's Table 2 models
    se-numpy bench         kernel speed against the measured memory bandwidth
"""
import argparse
import importlib
import sys

# Modules that register subcommands through ``add_commands(subparsers)``.
_COMMAND_MODULES = ("se_numpy.train.cli", "se_numpy.selfcheck", "se_numpy.analysis.table",
                    "se_numpy.bench")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="se-numpy",
        description="Squeeze-and-Excitation networks by hand: NumPy reference, Numba kernels, "
                    "a gradient checker.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in _COMMAND_MODULES:
        importlib.import_module(name).add_commands(subparsers)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
