"""The ``se-numpy`` command (also ``python -m se_numpy``).

    se-numpy demo          train a plain and an SE ResNet on the embedded data, compare
    se-numpy train         train a model from the registry (see --help)
    se-numpy evaluate      evaluate a run directory or checkpoint
    se-numpy gradcheck     check every differentiable operation against finite differences
    se-numpy reference     write float64 reference vectors for checking another implementation
    se-numpy models        parameters and GFLOPs of the paper's Table 2 models
    se-numpy bench         kernel speed against the measured memory bandwidth
    se-numpy ablate        the paper's ablation tables over several seeds, with statistics
    se-numpy predict       top-k ImageNet classes of images with a zoo model and its weights
"""
import argparse
import importlib
import sys

# Modules that register subcommands through ``add_commands(subparsers)``.
_COMMAND_MODULES = ("se_numpy.train.cli", "se_numpy.selfcheck", "se_numpy.analysis.table",
                    "se_numpy.reference", "se_numpy.ablate.cli", "se_numpy.predict")


def _parse_shape(text):
    try:
        shape = tuple(int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a shape like 64x256x56x56, got {text!r}")
    if len(shape) != 4 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"expected four positive sizes N x C x H x W, got {text!r}")
    return shape


def _bench(args):
    if args.backend == "cuda":
        from .kernels.backend import use_backend
        try:
            with use_backend("cuda"):     # the same one-line reason `train --backend cuda` gives
                pass
        except RuntimeError as error:
            print(f"se-numpy bench: error: {error}", file=sys.stderr)
            return 2
    from . import bench     # imported on use: it compiles kernels and may touch CUDA
    try:
        result = bench.run_benchmark(backend=args.backend, shapes=args.shape or None,
                                     dtype=args.dtype, repeats=args.repeats, out_dir=args.out,
                                     include_torch=not args.no_torch, quick=args.quick,
                                     kernels=args.kernels.split(",") if args.kernels else None)
    except ValueError as error:          # e.g. a --kernels name that is no kernel
        print(f"se-numpy bench: error: {error}", file=sys.stderr)
        return 2
    print(bench.format_table(result))
    for path in result.get("files", []):
        print(f"wrote {path}")
    return 0


def _add_bench_command(subparsers):
    parser = subparsers.add_parser(
        "bench", help="kernel speed against the memory bandwidth measured in the same run",
        description="Time the squeeze, scale and fused SE kernels of a backend against the "
                    "NumPy reference (and PyTorch when installed), as GB/s and as a fraction "
                    "of the measured copy bandwidth; writes JSON and a bar chart.")
    parser.add_argument("--backend", default="numba", choices=("numpy", "numba", "cuda"))
    parser.add_argument("--shape", type=_parse_shape, action="append", metavar="NxCxHxW",
                        help="feature-map shape (repeatable; default 64x256x56x56 and 8x64x32x32)")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--repeats", type=int, default=5, help="timed calls; the best is kept")
    parser.add_argument("--out", default="bench_out", help="directory for the JSON and PNG")
    parser.add_argument("--quick", action="store_true", help="smaller shapes, seconds not minutes")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch column")
    parser.add_argument("--kernels", metavar="NAME[,NAME...]",
                        help="time only these kernels (no SE block), e.g. "
                             "channel_pool_forward,squeeze_forward")
    parser.set_defaults(func=_bench)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="se-numpy",
        description="Squeeze-and-Excitation networks by hand: NumPy reference, Numba kernels, "
                    "a gradient checker.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in _COMMAND_MODULES:
        importlib.import_module(name).add_commands(subparsers)
    _add_bench_command(subparsers)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
