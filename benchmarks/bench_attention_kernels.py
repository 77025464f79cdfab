"""The attention kernels beside the SE kernels of the same role, interleaved in one window.

    python benchmarks/bench_attention_kernels.py                     # 64x256x56x56 float32
    python benchmarks/bench_attention_kernels.py --shape 16x64x56x56 --rounds 2

On a shared machine a kernel timed a minute after another is timed under
another load. So every round times each attention kernel and then the SE
kernel of its role (the pairs in ``PAIRS``), on the numba backend, and
measures the copy bandwidth; the best time of each kernel over all rounds
and the best bandwidth are kept. Bytes are ``contract.minimum_bytes`` (the
same count as ``se-numpy bench``); the fraction is GB/s over the copy
bandwidth.

Old against new: run this file alternately with the current tree and with an
older one exported beside it (the script imports whichever ``se_numpy``
comes first on the path); a kernel the older tree lacks is reported absent:

    git archive REV | tar -x -C /tmp/old
    PYTHONPATH=/tmp/old python benchmarks/bench_attention_kernels.py   # old
    python benchmarks/bench_attention_kernels.py                       # new, then old again
"""
import argparse
import os

import numpy as np

import se_numpy
from se_numpy.bench.memory import best_time, keep_freed_memory, measure_bandwidth
from se_numpy.kernels import backend, contract

# (attention kernel, the SE kernel that moves the same kind of data)
PAIRS = (("channel_pool_forward", "squeeze_forward"),
         ("channel_pool_backward", "squeeze_backward"),
         ("spatial_scale_forward", "scale_forward"),
         ("spatial_scale_backward", "scale_backward"),
         ("ge_gather_forward", "squeeze_forward"),
         ("ge_gather_backward", "squeeze_backward"),
         ("ge_excite_forward", "scale_forward"),
         ("ge_excite_backward", "scale_backward"))


def parse_shape(text):
    shape = tuple(int(part) for part in text.lower().split("x"))
    if len(shape) != 4 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"expected N x C x H x W, got {text!r}")
    return shape


def measure(shape, dtype, rounds, repeats):
    """{kernel: [seconds per round]} and the best copy bandwidth (GB/s) over the rounds."""
    kernels = backend.load_backend("numba")
    names = list(dict.fromkeys(name for pair in PAIRS for name in pair))
    present = [name for name in names if name in contract.OPS and hasattr(kernels, name)]
    arguments = {name: contract.example_arguments(name, shape, dtype) for name in present}
    times, bandwidths = {name: [] for name in present}, []
    with keep_freed_memory():
        for _ in range(rounds):
            for name in present:
                function = getattr(kernels, name)
                times[name].append(best_time(lambda: function(*arguments[name]), repeats))
            bandwidths.append(measure_bandwidth()["copy_GBps"])
    return times, max(bandwidths)


def format_rows(times, copy_GBps, shape, dtype):
    def cell(name):
        if name not in times:
            return "absent"
        seconds = min(times[name])
        fraction = contract.minimum_bytes(name, shape, np.dtype(dtype).itemsize) / seconds / 1e9
        return f"{seconds * 1e3:.1f} ({fraction / copy_GBps:.2f})"
    lines = ["| kernel | numba | SE kernel of the same role | numba |", "|---|---|---|---|"]
    lines += [f"| `{name}` | {cell(name)} | `{se}` | {cell(se)} |" for name, se in PAIRS]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=parse_shape, default=(64, 256, 56, 56))
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per round; best kept")
    args = parser.parse_args()
    load = os.getloadavg()
    times, copy_GBps = measure(args.shape, np.dtype(args.dtype), args.rounds, args.repeats)
    print(f"se_numpy from {os.path.dirname(se_numpy.__file__)}; shape {args.shape} {args.dtype}; "
          f"load average {load[0]:.2f} at the start, {os.getloadavg()[0]:.2f} at the end; "
          f"copy {copy_GBps:.1f} GB/s (best of {args.rounds}); ms (fraction of the copy)")
    print(format_rows(times, copy_GBps, args.shape, args.dtype))


if __name__ == "__main__":
    main()
