"""SE-ResNet-20's convolutions alone (batch 128): the numba backend against PyTorch's conv2d.

    python benchmarks/bench_conv.py --threads 2
    python benchmarks/bench_conv.py --threads 2 --torch-python /work/torchvenv/bin/python
    python benchmarks/bench_conv.py --cpu-time      # one thread, CPU seconds: robust under load
    python benchmarks/bench_conv.py --winograd      # Winograd against unfolding, speed and error
    python benchmarks/bench_conv.py --direct        # a direct 3x3 convolution against unfolding
    python benchmarks/bench_conv.py --wide          # per-sample products against wider ones
    python benchmarks/bench_conv.py --versus-torch --torch-python /work/torchvenv/bin/python \
        --threads 2 [--cpu-time] [--model seresnet50 --batch 1]   # per shape, and the GEMMs alone

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

``--direct`` times, for SE-ResNet-20's 3×3 stride-1 shapes, the direct
convolution of ``kernels/numba/direct_conv.py`` (a study, not a route)
against the numba backend's forward, both on one thread (CPU time), alternating.

``--wide`` times one block's forward product (W @ cols) three ways on one
thread: per sample (the kernel's batched ``np.matmul``), one wide product
over the samples side by side, (O, K) @ (K, S·L), and transposed,
(S·L, K) @ (K, O): whether fewer, larger calls would pay.

``--versus-torch`` splits the comparison per shape into forward, dx and dW
(PyTorch: ``torch.nn.grad.conv2d_input`` and ``conv2d_weight``, each alone;
se_numpy: the backward computes both in one pass, so its dx + dW is one
column) and adds, for se_numpy, the time of its matrix products alone (the
same calls on the same blocks and workers, the unfolding left out): what
OpenBLAS costs, against PyTorch's whole convolution. ``--model seresnet50``
does the forward of ResNet-50's 53 convolutions at 224×224 (``--batch`` 1 or
16), the shapes of the eval benchmark.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import same_threads  # noqa: E402  (before se_numpy: it keeps the starting environment)

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


def call_times(function, repeats, clock):
    """``repeats`` durations of ``function()`` by ``clock``, after one untimed call."""
    function()
    times = []
    for _ in range(repeats):
        start = clock()
        function()
        times.append(clock() - start)
    return times


def cpu_seconds(function, repeats):
    """The fastest of ``repeats`` calls, in CPU seconds of this thread."""
    return min(call_times(function, repeats, time.thread_time))


def median_seconds(function, repeats):
    """The median of ``repeats`` wall-clock calls."""
    return float(np.median(call_times(function, repeats, time.perf_counter)))


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

# ResNet-50 (timm's seresnet50) at 224×224: (C, O, H, kernel, stride, padding, count)
RESNET50_SHAPES = [(3, 64, 224, 7, 2, 3, 1),
                   (64, 64, 56, 1, 1, 0, 1), (256, 64, 56, 1, 1, 0, 2), (64, 64, 56, 3, 1, 1, 3),
                   (64, 256, 56, 1, 1, 0, 4),
                   (256, 128, 56, 1, 1, 0, 1), (128, 128, 56, 3, 2, 1, 1),
                   (128, 512, 28, 1, 1, 0, 4), (256, 512, 56, 1, 2, 0, 1),
                   (512, 128, 28, 1, 1, 0, 3), (128, 128, 28, 3, 1, 1, 3),
                   (512, 256, 28, 1, 1, 0, 1), (256, 256, 28, 3, 2, 1, 1),
                   (256, 1024, 14, 1, 1, 0, 6), (512, 1024, 28, 1, 2, 0, 1),
                   (1024, 256, 14, 1, 1, 0, 5), (256, 256, 14, 3, 1, 1, 5),
                   (1024, 512, 14, 1, 1, 0, 1), (512, 512, 14, 3, 2, 1, 1),
                   (512, 2048, 7, 1, 1, 0, 3), (1024, 2048, 14, 1, 2, 0, 1),
                   (2048, 512, 7, 1, 1, 0, 2), (512, 512, 7, 3, 1, 1, 2)]

SPLIT_TORCH_CODE = r"""
import json, sys, time
import numpy as np, torch
batch, repeats, threads, dtype, forward_only = (int(sys.argv[1]), int(sys.argv[2]),
                                               int(sys.argv[3]), sys.argv[4], sys.argv[6] == "1")
cpu_time = sys.argv[7] == "cpu"          # one thread: the fastest call's CPU time
torch.set_num_threads(threads)
clock = time.thread_time if cpu_time else time.perf_counter
def median(function):
    function()
    times = []
    for _ in range(repeats):
        t = clock(); function(); times.append(clock() - t)
    return float(np.min(times) if cpu_time else np.median(times))
out = []
with torch.no_grad():
    for c, o, h, k, s, p, _ in json.loads(sys.argv[5]):
        rng = np.random.default_rng(0)
        x = torch.from_numpy(rng.standard_normal((batch, c, h, h)).astype(dtype))
        w = torch.from_numpy(rng.standard_normal((o, c, k, k)).astype(dtype))
        y = torch.nn.functional.conv2d(x, w, None, s, p)
        row = {"forward": median(lambda: torch.nn.functional.conv2d(x, w, None, s, p))}
        if not forward_only:
            g = torch.ones_like(y)
            row["dx"] = median(lambda: torch.nn.grad.conv2d_input(x.shape, w, g, s, p))
            row["dW"] = median(lambda: torch.nn.grad.conv2d_weight(x, w.shape, g, s, p))
        out.append(row)
print(json.dumps(out))
"""


def products_alone(x, w, pair):
    """Functions running only the matrix products of the numba backend's forward, dW and dx,
    on the same blocks of samples, buffers and workers as ``kernels/numba/conv.py``
    (the columns hold random numbers: the unfolding is left out)."""
    from se_numpy.kernels.numba import conv
    from se_numpy.kernels.numba import conv_one_sample
    from se_numpy.kernels.numba.threads import run_chunks, worker_count
    stride, padding, dilation = pair
    n, o = x.shape[0], w.shape[0]
    out_h, out_w = conv._output_size(x.shape, w.shape[2:], stride, padding, dilation)
    rows, pixels, in_pixels = w[0].size, out_h * out_w, x.shape[2] * x.shape[3]
    weight = w.reshape(1, o, rows)
    dx_padding = conv._dx_as_convolution_padding(w.shape[2:], stride, padding, dilation)
    by_convolution = dx_padding is not None and not conv._is_pointwise(w.shape[2:], stride, padding)
    flipped = conv.flipped_transposed_weight(w, 1)
    dcols_rows, dcols_pixels = (flipped.shape[2], in_pixels) if by_convolution else (rows, pixels)
    # the stride-1 route takes dW from dcols and unfolds no cols (conv._backward)
    cols_size = 0 if by_convolution else rows * pixels
    per_block = conv._samples_per_block((cols_size + dcols_rows * dcols_pixels) * x.itemsize, n)
    blocks = conv._blocks(0, n, per_block)
    rng = np.random.default_rng(1)
    cols = rng.standard_normal((per_block, 1, rows, pixels)).astype(x.dtype)
    dcols = rng.standard_normal((per_block, 1, dcols_rows, dcols_pixels)).astype(x.dtype)
    out = np.empty((n, 1, o, pixels), dtype=x.dtype)
    dout = rng.standard_normal((n, 1, o, pixels)).astype(x.dtype)
    dx = np.empty((n, 1, x.shape[1], in_pixels) if by_convolution else
                  (n, 1, rows, pixels), dtype=x.dtype)
    dweight = np.empty((per_block, 1, dcols_rows, x.shape[1]) if by_convolution else
                       (per_block, 1, rows, o), dtype=x.dtype)
    images = (rng.standard_normal((n, 1, x.shape[1], in_pixels)).astype(x.dtype)
              if by_convolution else None)                  # x, read by dW on that route
    hold = o * rows * pixels < conv.SMALL_PRODUCT

    def forward(block, _):
        first, stop = blocks[block]
        np.matmul(weight, cols[:stop - first], out=out[first:stop])

    jobs = dict.fromkeys(("forward", "dW", "dx"), len(blocks))
    workers = worker_count(len(blocks) + 1)
    if conv.SHARE_ONE_SAMPLE and len(blocks) < workers and not hold:   # as the kernel: batch 1
        by_pixels = pixels >= o
        out_ranges = conv_one_sample.ranges(pixels if by_pixels else o, workers, 16)
        jobs["forward"] = len(out_ranges)

        def forward(job, _):                           # noqa: F811  (job: a range of the output)
            first, stop = out_ranges[job]
            if by_pixels:
                np.matmul(weight, cols[:n, ..., first:stop], out=out[..., first:stop])
            else:
                np.matmul(weight[:, first:stop], cols[:n], out=out[:, :, first:stop])

    def dw(block, _):
        first, stop = blocks[block]
        if by_convolution:                             # dW' = dcols @ xᵀ
            np.matmul(dcols[:stop - first], images[first:stop].transpose(0, 1, 3, 2),
                      out=dweight[:stop - first])
        else:                                          # dWᵀ = cols @ doutᵀ
            np.matmul(cols[:stop - first], dout[first:stop].transpose(0, 1, 3, 2),
                      out=dweight[:stop - first])

    def dx_product(block, _):
        first, stop = blocks[block]
        if by_convolution:
            np.matmul(flipped, dcols[:stop - first], out=dx[first:stop])
        else:
            np.matmul(weight.transpose(0, 2, 1), dout[first:stop], out=dx[first:stop])

    return {name: (lambda job=job, name=name: run_chunks(job, jobs[name], lambda: None,
                                                        hold_blas=hold))
            for name, job in (("forward", forward), ("dW", dw), ("dx", dx_product))}


def versus_torch(args):
    """--versus-torch: per shape, se_numpy and PyTorch side by side, and se_numpy's products alone.

    With --cpu-time both run on one thread and each time is the fastest call's CPU
    time of that thread (PyTorch with one thread runs its kernels in the calling thread)."""
    from se_numpy.kernels.numba import conv
    timer = cpu_seconds if args.cpu_time else median_seconds
    shapes = RESNET50_SHAPES if args.model == "seresnet50" else SHAPES
    forward_only = args.model == "seresnet50"
    for round_index in range(args.rounds):
        load = os.getloadavg()[0]
        ours = []
        for shape in shapes:
            x, w, pair = _arrays(args.batch, shape, args.dtype)
            dout = np.ones_like(conv.conv2d_forward(x, w, *pair, 1))
            gemms = products_alone(x, w, pair)
            row = {"forward": timer(lambda: conv.conv2d_forward(x, w, *pair, 1), args.repeats),
                   "gemm forward": timer(gemms["forward"], args.repeats)}
            if not forward_only:
                row["backward"] = timer(lambda: conv.conv2d_backward(dout, x, w, *pair, 1),
                                        args.repeats)
                row["gemm dx"] = timer(gemms["dx"], args.repeats)
                row["gemm dW"] = timer(gemms["dW"], args.repeats)
            ours.append(row)
        completed = subprocess.run(
            [args.torch_python, "-c", SPLIT_TORCH_CODE, str(args.batch), str(args.repeats),
             str(1 if args.cpu_time else args.threads), args.dtype, json.dumps(shapes),
             "1" if forward_only else "0", "cpu" if args.cpu_time else "wall"],
            capture_output=True, text=True, env=same_threads.torch_environment())
        if completed.returncode != 0:
            raise RuntimeError(f"PyTorch run failed:\n{completed.stderr[-2000:]}")
        theirs = json.loads(completed.stdout.strip().splitlines()[-1])
        clock = ("one thread, CPU ms of the fastest call" if args.cpu_time
                 else f"{args.threads} threads, median wall ms")
        print(f"round {round_index + 1}, {args.model} shapes, batch {args.batch}, {args.dtype}, "
              f"{clock} (load average {load:.2f} -> {os.getloadavg()[0]:.2f}); "
              f"'products' = se_numpy's matrix products alone:")
        print_split(shapes, ours, theirs, forward_only)


def print_split(shapes, ours, theirs, forward_only):
    header = f"  {'C->O  HxW  k s':<24}{'n':>3}{'fwd ours/products/torch':>26}"
    if not forward_only:
        header += f"{'bwd ours/products':>20}{'torch dx+dW':>13}{'fwd/bwd ratio':>15}"
    print(header)
    keys = ["forward", "gemm forward"] + ([] if forward_only else ["backward", "gemm dx", "gemm dW"])
    totals = dict.fromkeys(keys + ["torch forward", "torch backward"], 0.0)
    for (c, o, h, k, s, p, count), mine, torch_row in zip(shapes, ours, theirs):
        torch_backward = 0.0 if forward_only else torch_row["dx"] + torch_row["dW"]
        for key in keys:
            totals[key] += count * mine[key]
        totals["torch forward"] += count * torch_row["forward"]
        totals["torch backward"] += count * torch_backward
        line = (f"  {f'{c}->{o} {h}x{h} {k}x{k} s{s}':<24}{count:>3}"
                f"{mine['forward'] * 1e3:>10.2f}{mine['gemm forward'] * 1e3:>8.2f}"
                f"{torch_row['forward'] * 1e3:>8.2f}")
        if not forward_only:
            line += (f"{mine['backward'] * 1e3:>11.2f}"
                     f"{(mine['gemm dx'] + mine['gemm dW']) * 1e3:>9.2f}"
                     f"{torch_backward * 1e3:>13.2f}"
                     f"{mine['forward'] / torch_row['forward']:>8.2f}"
                     f"{mine['backward'] / torch_backward:>7.2f}")
        print(line)
    line = (f"  {'weighted sum':<27}{totals['forward'] * 1e3:>10.1f}"
            f"{totals['gemm forward'] * 1e3:>8.1f}{totals['torch forward'] * 1e3:>8.1f}")
    if not forward_only:
        line += (f"{totals['backward'] * 1e3:>11.1f}"
                 f"{(totals['gemm dx'] + totals['gemm dW']) * 1e3:>9.1f}"
                 f"{totals['torch backward'] * 1e3:>13.1f}"
                 f"{totals['forward'] / totals['torch forward']:>8.2f}"
                 f"{totals['backward'] / totals['torch backward']:>7.2f}")
    print(line)


def compare_direct(batch, repeats, rounds):
    """--direct: forward CPU time on one thread, the direct 3×3 study against unfolding + BLAS."""
    from se_numpy.kernels.numba import conv, direct_conv
    print(f"  {'C->O  HxW':<16}{'unfold ms':>11}{'direct ms':>11}{'direct / unfold':>17}"
          f"{'direct GMAC/s':>15}")
    for shape in SHAPES:
        c, o, h, k, s, p, _ = shape
        if (k, s, p) != (3, 1, 1):
            continue
        x, w, pair = _arrays(batch, shape, np.float32)
        for _ in range(rounds):
            unfold = cpu_seconds(lambda: conv.conv2d_forward(x, w, *pair, 1), repeats)
            direct = cpu_seconds(lambda: direct_conv.conv3x3(x, w), repeats)
            rate = batch * o * c * 9 * h * h / direct / 1e9
            print(f"  {f'{c}->{o} {h}x{h}':<16}{unfold * 1e3:>11.2f}{direct * 1e3:>11.2f}"
                  f"{direct / unfold:>17.2f}{rate:>15.1f}")


def compare_wide(repeats):
    """--wide: GMAC/s of a block's product per sample, side by side and transposed."""
    from se_numpy.kernels.numba import conv
    print(f"  {'O, K, L, samples':<22}{'per sample':>12}{'one wide':>10}{'transposed':>12}"
          "   (GMAC/s, one thread)")
    rng = np.random.default_rng(0)
    for c, o, h, k, s, p, _ in SHAPES:
        if (k, s) != (3, 1) or c == 3:
            continue
        rows, pixels = c * 9, h * h
        samples = conv._samples_per_block(rows * pixels * 4, 128)
        weight = rng.standard_normal((o, rows)).astype(np.float32)
        cols = rng.standard_normal((samples, rows, pixels)).astype(np.float32)
        wide = np.ascontiguousarray(cols.transpose(1, 0, 2)).reshape(rows, -1)
        tall = np.ascontiguousarray(wide.T)
        weight_t = np.ascontiguousarray(weight.T)
        rates = [o * rows * pixels * samples / cpu_seconds(product, repeats) / 1e9
                 for product in (lambda: np.matmul(weight, cols), lambda: weight @ wide,
                                 lambda: tall @ weight_t)]
        print(f"  {f'{o}, {rows}, {pixels}, {samples}':<22}{rates[0]:>12.1f}{rates[1]:>10.1f}"
              f"{rates[2]:>12.1f}")


def time_torch(python, batch, repeats, threads, dtype):
    completed = subprocess.run([python, "-c", TORCH_CODE, str(batch), str(repeats), str(threads),
                                dtype, json.dumps(SHAPES)], capture_output=True, text=True,
                               env=same_threads.torch_environment())
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
    parser.add_argument("--direct", action="store_true",
                        help="the direct 3x3 convolution study against unfolding (one thread)")
    parser.add_argument("--wide", action="store_true",
                        help="per-sample products against wider or transposed ones (one thread)")
    parser.add_argument("--versus-torch", action="store_true",
                        help="per shape: forward, dx, dW against PyTorch, and the products alone")
    parser.add_argument("--model", default="se_resnet20", choices=("se_resnet20", "seresnet50"),
                        help="--versus-torch: whose convolution shapes")
    args = parser.parse_args(argv)
    if args.versus_torch and not args.torch_python:
        parser.error("--versus-torch needs --torch-python")
    one_thread = args.cpu_time or args.winograd or args.direct or args.wide
    same_threads.set_se_numpy_threads(1 if one_thread else args.threads)
    if args.versus_torch:
        versus_torch(args)
        return 0
    one_thread_studies = [   # (chosen, title, study): each on one thread, in CPU time
        (args.wide, "one block's forward product, float32", lambda: compare_wide(args.repeats)),
        (args.direct, f"direct 3x3 convolution against unfolding + BLAS, forward, float32, "
                      f"batch {args.batch}",
         lambda: compare_direct(args.batch, args.repeats, args.rounds)),
        (args.winograd, "Winograd F(2x2, 3x3) against unfolding, forward, float32",
         lambda: compare_winograd(args.repeats)),
        (args.cpu_time, f"batch {args.batch}, {args.dtype}",
         lambda: print_table(time_cpu(args.batch, args.repeats, args.dtype), None))]
    for chosen, title, study in one_thread_studies:
        if chosen:
            print(f"{title}, one thread, CPU time (load average {os.getloadavg()[0]:.2f}):")
            study()
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
