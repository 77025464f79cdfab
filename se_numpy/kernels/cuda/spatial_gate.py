"""The spatial gate product on the GPU: y = x · g, one gate per pixel, and its backward.

Read ``kernels/numpy/spatial_gate.py`` for the math. The map is viewed as
(N, C, H·W) and the gate as (N, H·W):

* forward: one thread per element of y (grid-stride loop); neighbouring
  threads write neighbouring numbers of one plane and read neighbouring gate
  numbers, so every access of a warp is coalesced;
* backward: one thread per pixel, as the channel pooling (``channel_pool.py``):
  it walks the C channels, writes dx = dy·g at each and keeps Σ_c dy·x in a
  register, so dg needs no reduction across threads, no shared memory and no
  atomics, and each number of dy, x and dx is touched once.

float32 kernels accumulate in float32 (``kernels/cuda/se.py`` says why).
"""
from numba import cuda

from .launch import is_device_array, launch_threads, new_output, to_device


@cuda.jit(cache=True)
def spatial_scale_forward_kernel(planes, gates, out):
    """out[n,c,k] = planes[n,c,k] · gates[n,k]."""
    n_images, channels, pixels = planes.shape
    for flat in range(cuda.grid(1), n_images * channels * pixels, cuda.gridsize(1)):
        n, k = flat // (channels * pixels), flat % pixels
        c = (flat // pixels) % channels
        out[n, c, k] = planes[n, c, k] * gates[n, k]


@cuda.jit(cache=True)
def spatial_scale_backward_kernel(dy, planes, gates, dx, dg):
    """dx[n,c,k] = dy[n,c,k] · gates[n,k];  dg[n,k] = Σ_c dy[n,c,k] · planes[n,c,k]."""
    n_images, channels, pixels = dy.shape
    for job in range(cuda.grid(1), n_images * pixels, cuda.gridsize(1)):
        n, k = job // pixels, job % pixels
        gate = gates[n, k]
        total = dy.dtype.type(0)
        for c in range(channels):
            gradient = dy[n, c, k]
            dx[n, c, k] = gradient * gate
            total += gradient * planes[n, c, k]
        dg[n, k] = total


def _returned(results, to_host):
    results = [r.copy_to_host() if to_host else r for r in results]
    return results[0] if len(results) == 1 else tuple(results)


def spatial_scale_forward(x, g):
    """y = x · g (g (N, 1, H, W) broadcast over the channels); device in, device out."""
    n, c, h, w = x.shape
    planes = to_device(x).reshape(n, c, h * w)
    gates = to_device(g, x.dtype).reshape(n, h * w)
    out = new_output((n, c, h * w), x.dtype)
    launch_threads(spatial_scale_forward_kernel, out.size)(planes, gates, out)
    return _returned([out.reshape(n, c, h, w)], not is_device_array(x))


def spatial_scale_backward(dy, x, g):
    """``(dx, dg)``: dx = dy · g; dg (N, 1, H, W) = Σ_c dy·x, one thread per pixel."""
    n, c, h, w = dy.shape
    dy_planes = to_device(dy).reshape(n, c, h * w)
    planes = to_device(x, dy.dtype).reshape(n, c, h * w)
    gates = to_device(g, dy.dtype).reshape(n, h * w)
    dx, dg = new_output((n, c, h * w), dy.dtype), new_output((n, h * w), dy.dtype)
    launch_threads(spatial_scale_backward_kernel, n * h * w)(dy_planes, planes, gates, dx, dg)
    return _returned([dx.reshape(n, c, h, w), dg.reshape(n, 1, h, w)], not is_device_array(dy))


# the host functions carry their kernels, as host_wrapper's do (benchmark, PTX test);
# ``launch`` takes the number of jobs: elements (forward) or pixels (backward)
spatial_scale_forward.kernel = spatial_scale_forward_kernel
spatial_scale_backward.kernel = spatial_scale_backward_kernel
spatial_scale_forward.launch = spatial_scale_backward.launch = launch_threads
