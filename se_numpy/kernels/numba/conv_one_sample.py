"""A convolution's forward for a batch too small to share by samples (evaluation at batch 1).

``conv.py`` shares a batch among its workers by blocks of samples; one sample
is one block, so there it can share the output instead (``forward_shared_by_output``,
with ``conv.SHARE_ONE_SAMPLE`` set: off by default, conv.py says why).
``add_bias`` is the bias pass both paths run on a block of the output while it
is in cache.
"""
import threading

import numpy as np
from numba import njit

from . import threads
from .threads import run_on_workers
from .unfold import im2col_samples


@njit(nogil=True, cache=True)
def add_bias(out, bias):
    """out[s, γ, o, :] += bias[γ, o]; out (S, g, O/g, L), bias (g, O/g).

    Run on a block of samples right after its product, while the block is in cache."""
    for sample in range(out.shape[0]):
        for group in range(out.shape[1]):
            for o in range(out.shape[2]):
                row, value = out[sample, group, o], bias[group, o]
                for k in range(row.shape[0]):
                    row[k] += value


def ranges(count, parts, multiple):
    """[0, count) cut into at most ``parts`` ranges whose lengths are multiples of ``multiple``."""
    step = -(-count // parts)
    step = -(-step // multiple) * multiple
    return [(start, min(start + step, count)) for start in range(0, count, step)]


def forward_shared_by_output(x, weight_by_group, bias_by_group, out, pointwise, window, workers):
    """The forward of a batch too small to share by samples (eval at batch 1).

    Each worker unfolds a share of the input channels (channels c0..c1 fill rows
    c0·kh·kw ... c1·kh·kw of cols), waits for the others, then multiplies a
    share of the output: a range of pixels (columns of cols), or of filters
    where there are fewer pixels than filters (ResNet-50's last stage: 49
    pixels, 512-2048 filters). Single-threaded BLAS calls on both sides:
    OpenBLAS's own pool spins while it waits, and on a shared 2-core machine a
    spinning thread makes the call wait for the scheduler (products of 1-20 ms
    took multiples of 16 ms, docs/kernels.md). One pool dispatch per call."""
    n, channels = x.shape[:2]
    groups, filters, rows = weight_by_group.shape
    pixels = out.shape[-1]
    taps = rows * groups // channels
    cols = (x.reshape(n, groups * rows, pixels) if pointwise
            else np.empty((n, channels * taps, pixels), dtype=x.dtype))
    by_group = cols.reshape(n, groups, rows, pixels)
    channel_ranges = [] if pointwise else ranges(channels, workers, 1)
    by_pixels = pixels >= filters
    out_ranges = ranges(pixels, workers, 16) if by_pixels else ranges(filters, workers, 16)
    count = threads.worker_count(workers)               # the threads run_on_workers starts
    unfolded = threading.Barrier(count)

    def unfold(first, stop):
        for sample in range(n):                         # contiguous (1, c1 − c0, H, W) views
            im2col_samples(x[sample:sample + 1, first:stop],
                           cols[sample:sample + 1, first * taps:stop * taps], *window)

    def multiply(first, stop):
        if by_pixels:
            np.matmul(weight_by_group, by_group[..., first:stop], out=out[..., first:stop])
            if bias_by_group is not None:
                add_bias(out[..., first:stop], bias_by_group)
        else:
            np.matmul(weight_by_group[:, first:stop], by_group, out=out[:, :, first:stop])
            if bias_by_group is not None:
                add_bias(out[:, :, first:stop], bias_by_group[:, first:stop])

    def job(worker, count):                             # worker w: ranges w, w + count, ...
        try:
            for first, stop in channel_ranges[worker::count]:
                unfold(first, stop)
            unfolded.wait()
        except BaseException:
            unfolded.abort()                            # the others stop waiting, and raise
            raise
        for first, stop in out_ranges[worker::count]:
            multiply(first, stop)

    run_on_workers(job, workers)
