"""SE-ResNet-20's convolutions alone (batch 128): the numba backend against PyTorch's conv2d.

    python benchmarks/bench_conv.py --threads 2
    python benchmarks/bench_conv.py --threads 2 --torch-python /work/torchvenv/bin/python
    python benchmarks/bench_conv.py --cpu-time      # one thread, CPU seconds: robust under load
    python benchmarks/bench_conv.py --winograd      # Winograd against unfolding, speed and error

For each convolution shape of SE-ResNet-20 (and how many times a step runs
it) the script times ``conv2d_forward`` and ``conv2d_backward`` of the numba
backend and, given a Python with PyTorch, ``torch.nn.functional.conv2d``
forward and its autograd backward (dx and dW) on the same threads. se_numpy
and PyTorch are timed in alternating rounds, and the load average is
printed beside each. The last line is the weighted sum over a step's
convolutions: the convolution's share of one training step.

``--cpu-time`` times the same on one thread by the CPU time of that thread
(``time.thread_time``), which other programs on a shared machine change far
less than wall time. ``--winograd`` compares, for each 3×3 stride-1 shape of
SE-ResNet-20 and ResNet-50, the forward by Winograd F(2×2, 3×3) and by
unfolding (CPU time, one thread) and the float32 error of each against a
float64 evaluation of the same convolution.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

# (C, O, H, kernel, stride, padding, count per SE-ResNet-20 step)
SHAPES = [(3, 16, 32, 3, 1, 1, 1), (16, 16, 32, 3, 1, 1, 6),
          (16, 32, 32, 3, 2, 1, 1), (32, 32, 16, 3, 1, 1, 5), (16, 32, 32, 1, 2, 0, 1),
          (32, 64, 16, 3, 2, 1, 1), (64, 64, 8, 3, 1, 1, 5), (32, 64, 16, 1, 2, 0, 1)]

TORCH_CODE = r'''
import json, sys, time
import numpy as np, torch
batch, repeats, threads, dtype = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
torch.set_num_threads(threads)
out = []
for c, o, h, k, s, p, _ in json.loads(sys.argv[5]):
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((batch, c, h, h)).astype(dtype)).requires_grad_()
    w = torch.from_numpy(rng.standard_normal((o, c, k, k)).astype(dtype)).requires_grad_()
    times = {"forward": [], "backward": []}
    for r in range(repeats + 1):
        t = time.perf_counter(); y = torch.nn.functional.conv2d(x, w, None, s, p)
        t1 = time.perf_counter(); y.backward(torch.ones_like(y)); t2 = time.perf_counter()
        if r:
            times["forward"].append(t1 - t); times["backward"].append(t2 - t1)
        x.grad = w.grad = None
    out.append({key: float(np.median(v)) for key, v in times.items()})
print(json.dumps(out))
'''


def _arrays(batch, shape, dtype):
    """x, weight and the (stride, padding, dilation) pairs of one row of SHAPES."""
    c, o, h, k, s, p, _ = shape
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, c, h, h)).astype(dtype)
    w = rng.standard_normal((o, c, k, k)).astype(dtype)
    return x, w, ((s, s), (p, p), (1, 1))


def time_se_numpy(batch, repeats, dtype):
    import se_numpy as sn
    from se_numpy.kernels.numba import conv
    sn.use_backend("numba")
    results = []
    for shape in SHAPES:
        x, w, pair = _arrays(batch, shape, dtype)
        times = {"forward": [], "backward": []}
        for r in range(repeats + 1):                 # the first run compiles
            start = time.perf_counter()
            y = conv.conv2d_forward(x, w, *pair, 1)
            middle = time.perf_counter()
            conv.conv2d_backward(np.ones_like(y), x, w, *pair, 1)
            if r:
                times["forward"].append(middle - start)
                times["backward"].append(time.perf_counter() - middle)
        results.append({key: float(np.median(v)) for key, v in times.items()})
    return results


# 3×3 stride-1 shapes for --winograd: (C = O, H = W, batch), SE-ResNet-20's and ResNet-50's
WINOGRAD_SHAPES = [(16, 32, 32), (32, 16, 32), (64, 8, 32),
                   (64, 56, 2), (128, 28, 2), (256, 14, 2), (512, 7, 2)]


def cpu_seconds(function, repeats):
    """The fastest of ``repeats`` calls, in CPU seconds of this thread."""
    function()
    times = []
    for _ in range(repeats):
        start = time.thread_time()
        function()
        times.append(time.thread_time() - start)
    return min(times)


def time_cpu(batch, repeats, dtype):
    """--cpu-time: per shape, forward and backward CPU seconds on one thread."""
    import numba
    from se_numpy.kernels.numba import conv
    numba.set_num_threads(1)
    results = []
    for shape in SHAPES:
        x, w, pair = _arrays(batch, shape, dtype)
        dout = np.ones_like(conv.conv2d_forward(x, w, *pair, 1))
        results.append({
            "forward": cpu_seconds(lambda: conv.conv2d_forward(x, w, *pair, 1), repeats),
            "backward": cpu_seconds(lambda: conv.conv2d_backward(dout, x, w, *pair, 1), repeats)})
    return results


def compare_winograd(repeats):
    """--winograd: forward CPU time (one thread) and float32 error, Winograd against unfolding."""
    import numba
    from se_numpy.kernels import numpy as reference
    from se_numpy.kernels.numba import conv
    numba.set_num_threads(1)
    print(f"  {'C=O, HxW, batch':<20}{'unfold ms':>11}{'winograd ms':>13}{'speed-up':>10}"
          f"{'unfold error':>14}{'winograd error':>16}   (max |error| / max |out|)")
    default = conv.WINOGRAD_MIN_CHANNELS
    try:
        for channels, size, batch in WINOGRAD_SHAPES:
            rng = np.random.default_rng(0)
            x = rng.standard_normal((batch, channels, size, size)).astype(np.float32)
            w = (rng.standard_normal((channels, channels, 3, 3))
                 / np.sqrt(9 * channels)).astype(np.float32)
            options = ((1, 1), (1, 1), (1, 1), 1)
            exact = reference.conv2d_forward(x.astype(np.float64), w.astype(np.float64), *options)
            row = []
            for minimum in (None, 1):               # never Winograd, then always
                conv.WINOGRAD_MIN_CHANNELS = minimum
                seconds = cpu_seconds(lambda: conv.conv2d_forward(x, w, *options), repeats)
                error = np.abs(conv.conv2d_forward(x, w, *options) - exact).max()
                row.append((seconds, error / np.abs(exact).max()))
            (unfold, unfold_error), (fast, fast_error) = row
            print(f"  {f'{channels}, {size}x{size}, {batch}':<20}{unfold * 1e3:>11.2f}"
                  f"{fast * 1e3:>13.2f}{unfold / fast:>10.2f}{unfold_error:>14.1e}"
                  f"{fast_error:>16.1e}")
    finally:
        conv.WINOGRAD_MIN_CHANNELS = default


def time_torch(python, batch, repeats, threads, dtype):
    completed = subprocess.run([python, "-c", TORCH_CODE, str(batch), str(repeats), str(threads),
                                dtype, json.dumps(SHAPES)], capture_output=True, text=True)
    if completed.returncode != 0:
        raise RuntimeError(f"PyTorch run failed:\n{completed.stderr[-2000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def print_table(ours, torch_times):
    print(f"  {'C->O  HxW  k s':<22}{'count':>6}{'forward ms':>14}{'backward ms':>15}"
          + ("   torch fwd / bwd ms   ratio fwd / bwd" if torch_times else ""))
    totals = np.zeros(4)
    for index, (c, o, h, k, s, p, count) in enumerate(SHAPES):
        mine = ours[index]
        line = (f"  {f'{c}->{o} {h}x{h} {k}x{k} s{s}':<22}{count:>6}"
                f"{mine['forward'] * 1e3:>14.2f}{mine['backward'] * 1e3:>15.2f}")
        totals[:2] += count * np.array([mine["forward"], mine["backward"]])
        if torch_times:
            theirs = torch_times[index]
            totals[2:] += count * np.array([theirs["forward"], theirs["backward"]])
            line += (f"   {theirs['forward'] * 1e3:8.2f} / {theirs['backward'] * 1e3:7.2f}"
                     f"   {mine['forward'] / theirs['forward']:6.2f} / "
                     f"{mine['backward'] / theirs['backward']:5.2f}")
        print(line)
    line = f"  {'per step':<28}{totals[0] * 1e3:>14.1f}{totals[1] * 1e3:>15.1f}"
    if torch_times:
        line += (f"   {totals[2] * 1e3:8.1f} / {totals[3] * 1e3:7.1f}   "
                 f"{totals[0] / totals[2]:6.2f} / {totals[1] / totals[3]:5.2f}   "
                 f"total {totals[:2].sum() / totals[2:].sum():.2f}")
    print(line)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--torch-python", default=None)
    parser.add_argument("--cpu-time", action="store_true",
                        help="one thread, CPU time of that thread (no PyTorch)")
    parser.add_argument("--winograd", action="store_true",
                        help="Winograd F(2x2, 3x3) against unfolding: speed and float32 error")
    args = parser.parse_args(argv)
    sys.path.insert(0, os.path.dirname(__file__))
    from bench_train_step import set_threads
    set_threads(1 if args.cpu_time or args.winograd else args.threads)
    if args.winograd:
        print(f"Winograd F(2x2, 3x3) against unfolding, forward, float32, one thread "
              f"(load average {os.getloadavg()[0]:.2f}):")
        compare_winograd(args.repeats)
        return 0
    if args.cpu_time:
        print(f"CPU time of one thread, batch {args.batch}, {args.dtype} "
              f"(load average {os.getloadavg()[0]:.2f}):")
        print_table(time_cpu(args.batch, args.repeats, args.dtype), None)
        return 0
    for round_index in range(args.rounds):
        ours = time_se_numpy(args.batch, args.repeats, args.dtype)
        theirs = (time_torch(args.torch_python, args.batch, args.repeats, args.threads, args.dtype)
                  if args.torch_python else None)
        print(f"round {round_index + 1}, batch {args.batch}, {args.dtype}, {args.threads} threads "
              f"(load average {os.getloadavg()[0]:.2f}):")
        print_table(ours, theirs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
