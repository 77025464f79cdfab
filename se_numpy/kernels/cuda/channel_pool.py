"""The per-pixel channel pooling of spatial attention on the GPU: one thread per pixel.

Read ``kernels/numpy/channel_pool.py`` for the math. The map is viewed as
(N, C, H·W); thread t of the grid-stride loop owns pixel k = t mod H·W of
image n = t div H·W and walks the C channels. Neighbouring threads own
neighbouring pixels, so at every step over c a warp reads 32 neighbouring
numbers of one plane: coalesced, and each number of the map is read (forward)
or written (backward) exactly once. No reduction crosses threads, so there is
no shared memory and no ``syncthreads``.

As in ``cuda/se.py``, float32 maps accumulate in float32 (the accumulator is
created in the map's dtype); ``tests/test_cuda_ptx.py`` checks the PTX. The
arg-max keeps the first channel on a tie, and a NaN wins, as NumPy's argmax.
"""
from numba import cuda

from .launch import is_device_array, launch_threads, new_output, to_device


@cuda.jit(cache=True)
def channel_pool_forward_kernel(planes, mean, best, best_channel):
    """mean[n,k] = Σ_c planes[n,c,k] / C; best, best_channel: the first maximum over c."""
    n_images, channels, pixels = planes.shape
    for job in range(cuda.grid(1), n_images * pixels, cuda.gridsize(1)):
        n, k = job // pixels, job % pixels
        value = planes[n, 0, k]
        total, maximum, winner = value, value, 0
        for c in range(1, channels):
            value = planes[n, c, k]
            total += value
            # v != v is the NaN test: a NaN replaces a number, never another NaN
            if value > maximum or (value != value and maximum == maximum):
                maximum, winner = value, c
        mean[n, k] = total / planes.dtype.type(channels)
        best[n, k] = maximum
        best_channel[n, k] = winner


@cuda.jit(cache=True)
def channel_pool_backward_kernel(dmean, dmax, argmax, out):
    """out[n,c,k] = dmean[n,k] / C + (dmax[n,k] if c == argmax[n,k] else 0)."""
    n_images, channels, pixels = out.shape
    for job in range(cuda.grid(1), n_images * pixels, cuda.gridsize(1)):
        n, k = job // pixels, job % pixels
        share = dmean[n, k] / dmean.dtype.type(channels)
        gradient, winner = dmax[n, k], argmax[n, k]
        for c in range(channels):
            out[n, c, k] = share + gradient if c == winner else share


def _returned(results, to_host):
    return tuple(r.copy_to_host() for r in results) if to_host else tuple(results)


def channel_pool_forward(x):
    """``(mean, max, argmax)`` over the channels, each (N, 1, H, W); device in, device out."""
    n, c, h, w = x.shape
    planes = to_device(x).reshape(n, c, h * w)
    mean, best = new_output((n, h * w), x.dtype), new_output((n, h * w), x.dtype)
    best_channel = new_output((n, h * w), "int64")
    launch_threads(channel_pool_forward_kernel, n * h * w)(planes, mean, best, best_channel)
    results = [array.reshape(n, 1, h, w) for array in (mean, best, best_channel)]
    return _returned(results, not is_device_array(x))


def channel_pool_backward(dmean, dmax, argmax, x_shape):
    """dx (x_shape) = dmean / C at every channel plus dmax at the arg-max channel."""
    n, c, h, w = x_shape
    dtype = dmean.dtype
    shares = to_device(dmean, dtype).reshape(n, h * w)
    maxima = to_device(dmax, dtype).reshape(n, h * w)
    winners = to_device(argmax, "int64").reshape(n, h * w)
    out = new_output((n, c, h * w), dtype)
    launch_threads(channel_pool_backward_kernel, n * h * w)(shares, maxima, winners, out)
    return _returned([out.reshape(n, c, h, w)], not is_device_array(dmean))[0]


# the host functions carry their kernels, as host_wrapper's do (benchmark, PTX test)
channel_pool_forward.kernel = channel_pool_forward_kernel
channel_pool_backward.kernel = channel_pool_backward_kernel
channel_pool_forward.launch = channel_pool_backward.launch = launch_threads
