"""Measure the SE kernels against this machine's memory bandwidth.

    python benchmarks/bench_kernels.py                    # numpy vs numba (+ torch if importable)
    python benchmarks/bench_kernels.py --quick            # smaller shapes, seconds
    python benchmarks/bench_kernels.py --shapes 64,256,56,56 --repeats 10 --out bench_out

Writes ``kernels_<backend>.json`` and ``kernels_<backend>.png`` into --out and
prints the table. See benchmarks/README.md for how to read it.
"""
import argparse

from se_numpy.bench import format_table, run_benchmark


def parse_shape(text):
    try:
        shape = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N,C,H,W (e.g. 64,256,56,56), got {text!r}")
    if len(shape) != 4:
        raise argparse.ArgumentTypeError(f"expected 4 comma-separated ints N,C,H,W, got {text!r}")
    return shape


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="numba", choices=["numpy", "numba", "cuda"])
    parser.add_argument("--shapes", type=parse_shape, nargs="+", default=None, metavar="N,C,H,W")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="bench_out")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch column")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    result = run_benchmark(backend=args.backend, shapes=args.shapes, dtype=args.dtype,
                           repeats=args.repeats, out_dir=args.out,
                           include_torch=not args.no_torch, quick=args.quick)
    print(format_table(result))
    print("\nwrote", ", ".join(result.get("files", [])))


if __name__ == "__main__":
    main()
