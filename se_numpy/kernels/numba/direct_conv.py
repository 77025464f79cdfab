"""A direct 3×3 stride-1 convolution in Numba: tried against unfolding + BLAS, not used.

Kept as a study (``benchmarks/bench_conv.py --direct``; docs/kernels.md,
"Against PyTorch, shape by shape"): oneDNN, PyTorch's CPU convolution, computes
convolutions directly, without im2col's 9× copy of the input, and this is that
method in its plainest vectorisable form.

One sample's channels are copied once into zero-padded planes of width
W + 2, laid end to end, so every output pixel (p, q) and tap (a, b) reads the
plane at one offset from a single flat index i = p·(W + 2) + q:

    out_flat[o, i] = Σ_c Σ_{a,b} w[o, c, a, b] · x_pad_flat[c, i + a·(W + 2) + b]

computed for i in [0, (H − 1)·(W + 2) + W): the two columns beyond each image
row are computed and thrown away (2/(W + 2) of the work: 6 % at 32×32, 20 % at
8×8). The inner loop runs over i, contiguous in both arrays, for four output
channels and one kernel row at a time (12 multiply-adds per pixel, 3 loads of
x, 4 loads and stores of the accumulators), which LLVM vectorises.

``fastmath={"contract"}`` lets LLVM fuse each multiply and add into one FMA
(one rounding instead of two: the result is at least as close to the exact sum;
the test holds it to the same bound as unfolding). No reassociation: the sums
run over c, then a, then b, in that order.
"""
import numpy as np
from numba import njit

FILTERS_PER_PASS = 4


@njit(nogil=True, cache=True)
def pad_sample(image, planes, width):
    """planes[c, (i + 1)·(W + 2) + j + 1] = image[c, i, j]; the border stays 0."""
    for c in range(image.shape[0]):
        for i in range(image.shape[1]):
            row, source = planes[c, (i + 1) * width + 1:], image[c, i]
            for j in range(image.shape[2]):
                row[j] = source[j]


@njit(nogil=True, cache=True, fastmath={"contract"})
def accumulate_sample(planes, weight, sums, width):
    """sums[o, i] = Σ_{c,a,b} weight[o, c, a, b] · planes[c, i + a·width + b], 4 filters a pass."""
    span = sums.shape[1]
    for o in range(0, weight.shape[0], FILTERS_PER_PASS):
        s0, s1, s2, s3 = sums[o], sums[o + 1], sums[o + 2], sums[o + 3]
        s0[:] = 0
        s1[:] = 0
        s2[:] = 0
        s3[:] = 0
        for c in range(weight.shape[1]):
            for a in range(3):
                x = planes[c, a * width:]                 # kernel row a: offsets 0, 1, 2 from i
                u0, u1, u2 = weight[o, c, a, 0], weight[o, c, a, 1], weight[o, c, a, 2]
                v0, v1, v2 = weight[o + 1, c, a, 0], weight[o + 1, c, a, 1], weight[o + 1, c, a, 2]
                r0, r1, r2 = weight[o + 2, c, a, 0], weight[o + 2, c, a, 1], weight[o + 2, c, a, 2]
                t0, t1, t2 = weight[o + 3, c, a, 0], weight[o + 3, c, a, 1], weight[o + 3, c, a, 2]
                for i in range(span):
                    x0, x1, x2 = x[i], x[i + 1], x[i + 2]
                    s0[i] = s0[i] + u0 * x0 + u1 * x1 + u2 * x2
                    s1[i] = s1[i] + v0 * x0 + v1 * x1 + v2 * x2
                    s2[i] = s2[i] + r0 * x0 + r1 * x1 + r2 * x2
                    s3[i] = s3[i] + t0 * x0 + t1 * x1 + t2 * x2


@njit(nogil=True, cache=True)
def conv3x3_loop(x, weight, out, planes, sums):
    """Sample by sample: pad, accumulate, then copy the W valid columns of each row out."""
    height, width = x.shape[2], x.shape[3]
    wide = width + 2
    planes[:] = 0
    for n in range(x.shape[0]):
        pad_sample(x[n], planes, wide)
        accumulate_sample(planes, weight, sums, wide)
        for o in range(out.shape[1]):
            for i in range(height):
                target, source = out[n, o, i], sums[o, i * wide:]
                for j in range(width):
                    target[j] = source[j]


def conv3x3(x, weight):
    """conv2d(x, weight) for a 3×3 kernel, stride 1, padding 1, no dilation or groups.

    x (N, C, H, W), weight (O, C, 3, 3) with O a multiple of 4 -> (N, O, H, W). One thread."""
    x, weight = np.ascontiguousarray(x), np.ascontiguousarray(weight, dtype=x.dtype)
    n, channels, height, width = x.shape
    if weight.shape[1:] != (channels, 3, 3) or weight.shape[0] % FILTERS_PER_PASS:
        raise ValueError(f"conv3x3: expected weight (O, {channels}, 3, 3) with O a multiple of "
                         f"{FILTERS_PER_PASS}, got {weight.shape}")
    wide = width + 2
    planes = np.zeros((channels, (height + 2) * wide), dtype=x.dtype)
    sums = np.empty((weight.shape[0], (height - 1) * wide + width), dtype=x.dtype)
    out = np.empty((n, weight.shape[0], height, width), dtype=x.dtype)
    conv3x3_loop(x, weight, out, planes, sums)
    return out
