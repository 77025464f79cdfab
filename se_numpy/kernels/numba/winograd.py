"""Winograd F(2×2, 3×3): a stride-1 3×3 convolution with 16 multiplications per 2×2 outputs, not 36.

Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (2016). For
one channel, one filter g (3×3) and one 4×4 input tile d, the 2×2 outputs are

    Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A

    Bᵀ = [[1, 0, −1, 0], [0, 1, 1, 0], [0, −1, 1, 0], [0, 1, 0, −1]]
    G  = [[1, 0, 0], [½, ½, ½], [½, −½, ½], [0, 0, 1]]
    Aᵀ = [[1, 1, 1, 0], [0, 1, −1, −1]]

Summed over the C channels, the elementwise product becomes, for each of the
16 positions ξ of the 4×4 transformed tile, a matrix product over channels:

    U[ξ] = (G g Gᵀ)[ξ]    (O, C)           the filters, transformed once
    V[ξ] = (Bᵀ d B)[ξ]    (C, tiles)       every input tile of a block of samples
    M[ξ] = U[ξ] @ V[ξ]    (O, tiles)       16 BLAS calls (one batched np.matmul)
    out tile = Aᵀ M A                      2×2 outputs per tile

2.25× fewer multiplications in the products than the direct method, paid
for by the transforms (memory passes over V and M) and by a different
rounding: the transforms add and subtract inputs of mixed signs (which
loses accuracy), the filters are transformed in float64 and each product
sums C terms, not 9·C (which gains it). Measured in float32 against a float64
reference, max |error| / max |out|: 1.8-6.8e-7, against 4.4-7.1e-7 for the
direct method, smaller on 16-64 channels and larger on 256-512
(``python benchmarks/bench_conv.py --winograd``; docs/kernels.md, "Convolution").
``conv.py`` uses it for the forward pass and for dx when
``conv.WINOGRAD_MIN_CHANNELS`` is set (off by default: it did not pay there).
"""
import numpy as np
from numba import njit

from .threads import run_chunks

G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])


def applies(kernel, stride, dilation, groups):
    """A 3×3 kernel, stride 1, no dilation, one group: F(2×2, 3×3)'s case."""
    return (tuple(kernel) == (3, 3) and tuple(stride) == (1, 1) and tuple(dilation) == (1, 1)
            and groups == 1)


def filter_transform(weight):
    """U[ξ = 4i + j, o, c] = (G w[o, c] Gᵀ)[i, j]   (O, C, 3, 3) -> (16, O, C), in w's dtype."""
    transformed = np.empty((16,) + weight.shape[:2], dtype=weight.dtype)
    filter_transform_loop(np.ascontiguousarray(weight), transformed, G)
    return transformed


@njit(nogil=True, cache=True)
def filter_transform_loop(weight, transformed, g_matrix):
    """The loop of ``filter_transform``, in float64, rounded once at the end: 16·O·C small
    products as NumPy calls (or BLAS calls with K = 3) cost more than the convolution."""
    rows = np.empty((4, 3))
    for o in range(weight.shape[0]):
        for c in range(weight.shape[1]):
            for i in range(4):                      # G w: (4, 3)
                for b in range(3):
                    total = 0.0
                    for a in range(3):
                        total += g_matrix[i, a] * weight[o, c, a, b]
                    rows[i, b] = total
            for i in range(4):                      # (G w) Gᵀ: (4, 4)
                for j in range(4):
                    total = 0.0
                    for b in range(3):
                        total += rows[i, b] * g_matrix[j, b]
                    transformed[4 * i + j, o, c] = total


@njit(nogil=True, cache=True)
def input_transform(images, tiles, pad_h, pad_w, tiles_h, tiles_w):
    """tiles[ξ, c, s·T + t] = (Bᵀ d B)[ξ], d the 4×4 input patch at (2·ti − ph, 2·tj − pw).

    images (S, C, H, W), tiles (16, C, S·T) with T = tiles_h·tiles_w; pixels
    outside the image (padding, or past the last output) read as 0. A strip
    of tiles shares its 4 input rows: Bᵀ combines them once, along the whole
    (zero-padded) row, then B combines each tile's 4 columns."""
    samples, channels, height, width = images.shape
    padded_width = 2 * tiles_w + 2
    strip = np.empty((4, padded_width), dtype=images.dtype)
    combined = np.empty((4, padded_width), dtype=images.dtype)
    for s in range(samples):
        for c in range(channels):
            for ti in range(tiles_h):
                for u in range(4):                  # the strip's rows, zero outside the image
                    i = 2 * ti - pad_h + u
                    inside = 0 <= i < height
                    for v in range(padded_width):
                        j = v - pad_w
                        strip[u, v] = images[s, c, i, j] if inside and 0 <= j < width else 0
                for v in range(padded_width):       # Bᵀ d for every tile of the strip at once
                    combined[0, v] = strip[0, v] - strip[2, v]
                    combined[1, v] = strip[1, v] + strip[2, v]
                    combined[2, v] = strip[2, v] - strip[1, v]
                    combined[3, v] = strip[1, v] - strip[3, v]
                first = (s * tiles_h + ti) * tiles_w
                for u in range(4):                  # (Bᵀ d) B, tile by tile
                    for tj in range(tiles_w):
                        c0, c1 = combined[u, 2 * tj], combined[u, 2 * tj + 1]
                        c2, c3 = combined[u, 2 * tj + 2], combined[u, 2 * tj + 3]
                        tiles[4 * u, c, first + tj] = c0 - c2
                        tiles[4 * u + 1, c, first + tj] = c1 + c2
                        tiles[4 * u + 2, c, first + tj] = c2 - c1
                        tiles[4 * u + 3, c, first + tj] = c1 - c3


@njit(nogil=True, cache=True)
def output_transform(products, out, tiles_h, tiles_w):
    """out[s, o, 2ti + y, 2tj + x] = (Aᵀ m A)[y, x], m = products[:, o, s·T + t] as 4×4.

    products (16, O, S·T), out (S, O, OH, OW); the outputs of the last tiles
    that fall past OH or OW are dropped."""
    samples, filters, out_h, out_w = out.shape
    for s in range(samples):
        for o in range(filters):
            for ti in range(tiles_h):
                first_column = (s * tiles_h + ti) * tiles_w
                for tj in range(tiles_w):
                    column = first_column + tj
                    # Aᵀ m: rows 0 and 1 of the 2×4 intermediate, column by column
                    a0 = products[0, o, column] + products[4, o, column] + products[8, o, column]
                    a1 = products[1, o, column] + products[5, o, column] + products[9, o, column]
                    a2 = products[2, o, column] + products[6, o, column] + products[10, o, column]
                    a3 = products[3, o, column] + products[7, o, column] + products[11, o, column]
                    b0 = products[4, o, column] - products[8, o, column] - products[12, o, column]
                    b1 = products[5, o, column] - products[9, o, column] - products[13, o, column]
                    b2 = products[6, o, column] - products[10, o, column] - products[14, o, column]
                    b3 = products[7, o, column] - products[11, o, column] - products[15, o, column]
                    i, j = 2 * ti, 2 * tj           # (Aᵀ m) A: combine the columns
                    last_row, last_column = i + 1 < out_h, j + 1 < out_w
                    out[s, o, i, j] = a0 + a1 + a2
                    if last_column:
                        out[s, o, i, j + 1] = a1 - a2 - a3
                    if last_row:
                        out[s, o, i + 1, j] = b0 + b1 + b2
                        if last_column:
                            out[s, o, i + 1, j + 1] = b1 - b2 - b3


def tile_counts(out_h, out_w):
    return -(-out_h // 2), -(-out_w // 2)


def bytes_per_sample(channels, filters, out_h, out_w, itemsize):
    """The two buffers' size for one sample: 16 transformed values per tile and channel."""
    tiles_h, tiles_w = tile_counts(out_h, out_w)
    return 16 * (channels + filters) * tiles_h * tiles_w * itemsize


def conv2d(x, weight, padding, samples_per_block):
    """The 3×3 stride-1 convolution of x (N, C, H, W) by weight (O, C, 3, 3)  -> (N, O, OH, OW).

    Blocks of ``samples_per_block`` samples, shared by the workers as in ``conv.py``."""
    n, channels, height, width = x.shape
    filters = weight.shape[0]
    out = np.empty((n, filters, height + 2 * padding[0] - 2, width + 2 * padding[1] - 2),
                   dtype=x.dtype)
    transformed = filter_transform(weight)
    tiles_h, tiles_w = tile_counts(*out.shape[2:])
    columns = samples_per_block * tiles_h * tiles_w
    starts = list(range(0, n, samples_per_block))

    def scratch():
        return (np.empty(16 * channels * columns, dtype=x.dtype),
                np.empty(16 * filters * columns, dtype=x.dtype))

    def one_block(block, buffers):
        first = starts[block]
        stop = min(first + samples_per_block, n)
        convolve_block(x[first:stop], transformed, out[first:stop], padding, buffers)

    run_chunks(one_block, len(starts), scratch, hold_blas=True)
    return out


def convolve_block(images, transformed_weight, out, padding, buffers):
    """out (S, O, OH, OW) = the 3×3 stride-1 convolution of images (S, C, H, W), via F(2×2, 3×3).

    ``buffers``: two flat arrays of at least 16·C·S·T and 16·O·S·T numbers."""
    tiles_h, tiles_w = tile_counts(*out.shape[2:])
    columns = images.shape[0] * tiles_h * tiles_w
    channels, filters = images.shape[1], out.shape[1]
    tiles = buffers[0][:16 * channels * columns].reshape(16, channels, columns)
    products = buffers[1][:16 * filters * columns].reshape(16, filters, columns)
    input_transform(images, tiles, padding[0], padding[1], tiles_h, tiles_w)
    np.matmul(transformed_weight, tiles, out=products)
    output_transform(products, out, tiles_h, tiles_w)
