"""Numba convolution: a few samples at a time unfolded into a worker's own buffer, then BLAS.

Read ``kernels/numpy/conv.py`` first: the same sums, there for the whole batch
at once. Unfolding the whole batch is what this file avoids: for SE-ResNet-20's
first stage that is 128 × 144 × 1024 float32 = 75 MB, written to fresh memory,
then read back by the matrix product. Here a block of samples is unfolded into
a buffer owned by one worker thread (at most ``BLOCK_BYTES``, which stays in
that core's L2 cache: one 32×32 sample of 16 channels, eight 8×8 samples of
64) and multiplied there by single-threaded BLAS calls (``threads.py`` says
why), one ``np.matmul`` over the block's samples and groups. The loops
(``unfold.py``) release the GIL, so the workers run them side by side.

dx of a stride-1 convolution is computed as a forward convolution of dout
(``conv2d_backward``); docs/kernels.md, "Convolution", has the measurements.
"""
import numpy as np
from numba import njit

from ..contract import conv_output_size
from . import winograd
from .conv_one_sample import add_bias, forward_shared_by_output
from .threads import run_chunks, worker_count
from .unfold import col2im_loop, col2im_samples, im2col_loop, im2col_samples
from .unfold import col2im_sample, im2col_sample  # noqa: F401  (the per-sample loops, for tests)

# dW is summed in float64 per chunk of samples, the chunks' sums then in chunk
# order: a fixed count, so the result is the same for any number of threads.
DWEIGHT_CHUNKS = 8

# Per-sample products below this many multiply-adds run on one BLAS thread even
# when one worker does them all (batch 1): OpenBLAS's pool costs more than it
# gains there. A CIFAR 3×3 convolution is 2.4 M; ResNet-50's at 56×56, 116 M.
SMALL_PRODUCT = 1 << 23

# Winograd F(2×2, 3×3) (winograd.py) for 3×3 stride-1 convolutions of at least
# this many input channels, or None: never. Off by default: with its transforms
# written as Numba loops it measured no faster than unfolding on SE-ResNet-20's
# shapes, and at batch 1-2 on ResNet-50's the filter transform (16·O·C numbers
# per call) costs more than the product saves (docs/kernels.md, "Convolution").
WINOGRAD_MIN_CHANNELS = None

# A batch of one sample shared among the workers by its output (conv_one_sample.py)
# instead of one block on OpenBLAS's own threads. Off by default: on a quiet machine
# it was slower (seresnet50 at batch 1, 143 ms against 96-109 ms), on a loaded one
# faster (201-380 ms against 699-1150 ms), where OpenBLAS's spinning pool loses
# (docs/kernels.md, "Convolution").
SHARE_ONE_SAMPLE = False

# A worker's unfolded block of samples stays under this size: in L2 (2 MB per
# core on the Xeon of docs/kernels.md, 1 MB on many others), and samples enough
# per BLAS call that the calls from Python cost little beside the work.
BLOCK_BYTES = 1 << 20


def _window(kernel, stride, padding, dilation, out_h, out_w):
    """The trailing (kernel, stride, padding, dilation, output size) arguments of the loops."""
    return (kernel[0], kernel[1], stride[0], stride[1], padding[0], padding[1],
            dilation[0], dilation[1], out_h, out_w)


def _output_size(shape, kernel, stride, padding, dilation):
    return (conv_output_size(shape[2], kernel[0], stride[0], padding[0], dilation[0]),
            conv_output_size(shape[3], kernel[1], stride[1], padding[1], dilation[1]))


def im2col(x, kernel, stride, padding, dilation):
    """x (N,C,H,W) -> cols (N, C·kh·kw, OH·OW); row c·kh·kw + a·kw + b, as the reference."""
    x = np.ascontiguousarray(x)
    n, c = x.shape[:2]
    out_h, out_w = _output_size(x.shape, kernel, stride, padding, dilation)
    cols = np.empty((n, c * kernel[0] * kernel[1], out_h * out_w), dtype=x.dtype)
    return im2col_loop(x, cols, _window(kernel, stride, padding, dilation, out_h, out_w))


def col2im(cols, x_shape, kernel, stride, padding, dilation):
    """Adjoint of im2col: scatter-add every column entry back to its pixel.  -> (N,C,H,W)."""
    out_h, out_w = _output_size(x_shape, kernel, stride, padding, dilation)
    cols = np.ascontiguousarray(cols)
    dx = np.empty(tuple(x_shape), dtype=cols.dtype)
    return col2im_loop(cols, dx, *_window(kernel, stride, padding, dilation, out_h, out_w))


def _is_pointwise(kernel, stride, padding):
    """A 1×1 convolution with stride 1 and no padding: cols = x[n] viewed as (C, H·W).

    Two of the three convolutions of a bottleneck block (ResNet-50) are of this
    kind; for them unfolding is a plain copy and folding the identity, so
    both are skipped."""
    return tuple(kernel) == (1, 1) and tuple(stride) == (1, 1) and tuple(padding) == (0, 0)


@njit(nogil=True, cache=True)
def add_samples(total, block):
    """total += block[0] + block[1] + ..., in that order; total float64 (M,), block (S, M).

    NumPy's ``block.sum(0, dtype=float64)`` converts through small buffers and
    took as long as a third of the dW product for 64 filters."""
    for sample in range(block.shape[0]):
        for index in range(total.shape[0]):
            total[index] += block[sample, index]


def _blocks(first, stop, per_block):
    """[first, stop) cut into consecutive ranges of at most ``per_block`` samples."""
    return [(start, min(start + per_block, stop)) for start in range(first, stop, per_block)]


def _samples_per_block(bytes_per_sample, n):
    """Samples per block: as many as fit ``BLOCK_BYTES``, at most an eighth of the batch
    (so that there are blocks enough for the workers to share)."""
    return max(1, min(BLOCK_BYTES // max(bytes_per_sample, 1), -(-n // DWEIGHT_CHUNKS)))


def use_winograd(kernel, stride, dilation, groups, channels):
    """Whether a convolution of ``channels`` input channels goes by Winograd F(2×2, 3×3)."""
    return (WINOGRAD_MIN_CHANNELS is not None and winograd.applies(kernel, stride, dilation, groups)
            and channels >= WINOGRAD_MIN_CHANNELS)


def _winograd(x, weight, padding):
    """``winograd.conv2d`` with blocks of samples sized as the unfolding's."""
    per_sample = winograd.bytes_per_sample(
        x.shape[1], weight.shape[0], *_output_size(x.shape, (3, 3), (1, 1), padding, (1, 1)),
        x.itemsize)
    return winograd.conv2d(x, weight, padding, _samples_per_block(per_sample, x.shape[0]))


def conv2d_forward(x, weight, stride, padding, dilation, groups):
    """Convolution without bias (the contract's row): ``conv2d_bias_forward`` with no bias."""
    return conv2d_bias_forward(x, weight, None, stride, padding, dilation, groups)


def conv2d_bias_forward(x, weight, bias, stride, padding, dilation, groups):
    """Convolution plus bias, the reference's conv2d_forward (+ bias) computed a block at a time.

    Per block of S samples: cols = im2col(x[block]) (S, g, C/g·kh·kw, L) in the
    worker's own buffer, then out[block] = W (g, O/g, C/g·kh·kw) @ cols, one
    ``np.matmul`` (a BLAS call per sample and group), written in place, then
    the bias (O,) or None added to the block while it is in cache (``add_bias``).
    With ``WINOGRAD_MIN_CHANNELS`` set, a 3×3 stride-1 convolution of that many
    channels or more goes by Winograd's F(2×2, 3×3) instead (``winograd.py``).
    -> (N, O, OH, OW)."""
    x, weight = np.ascontiguousarray(x), np.ascontiguousarray(weight)
    if use_winograd(weight.shape[2:], stride, dilation, groups, x.shape[1]):
        out = _winograd(x, weight, padding)
        if bias is not None:
            out += bias[None, :, None, None]
        return out
    n, out_channels = x.shape[0], weight.shape[0]
    out_h, out_w = _output_size(x.shape, weight.shape[2:], stride, padding, dilation)
    window = _window(weight.shape[2:], stride, padding, dilation, out_h, out_w)
    weight_by_group = weight.reshape(groups, out_channels // groups, -1)   # (g, O/g, K)
    filters, rows = weight_by_group.shape[1:]
    pixels = out_h * out_w
    out = np.empty((n, groups, filters, pixels), dtype=x.dtype)
    bias_by_group = None if bias is None else np.ascontiguousarray(bias).reshape(groups, filters)
    pointwise = _is_pointwise(weight.shape[2:], stride, padding)
    per_block = _samples_per_block(groups * rows * pixels * x.itemsize, n)
    blocks = _blocks(0, n, per_block)

    def scratch():
        return None if pointwise else np.empty((per_block, groups * rows, pixels), dtype=x.dtype)

    def one_block(block, cols):
        first, stop = blocks[block]
        if pointwise:                                   # the columns are x itself
            cols = x[first:stop].reshape(stop - first, groups * rows, pixels)
        else:
            cols = cols[:stop - first]
            im2col_samples(x[first:stop], cols, *window)
        np.matmul(weight_by_group, cols.reshape(stop - first, groups, rows, pixels),
                  out=out[first:stop])
        if bias_by_group is not None:
            add_bias(out[first:stop], bias_by_group)

    small = out_channels * rows * pixels < SMALL_PRODUCT
    workers = worker_count(len(blocks) + 1)
    if SHARE_ONE_SAMPLE and len(blocks) < workers and not small:   # batch 1: by the output
        forward_shared_by_output(x, weight_by_group, bias_by_group, out, pointwise, window,
                                 workers)
    else:
        run_chunks(one_block, len(blocks), scratch, hold_blas=small)
    return out.reshape(n, out_channels, out_h, out_w)


def _dx_as_convolution_padding(kernel, stride, padding, dilation):
    """The padding d·(k − 1) − p of dx as a forward convolution of dout, or None where it
    does not apply: strides > 1 (dout would need zeros between its pixels) or p > d·(k − 1)."""
    if tuple(stride) != (1, 1):
        return None
    pads = tuple(d * (k - 1) - p for k, p, d in zip(kernel, padding, dilation))
    return pads if min(pads) >= 0 else None


def flipped_transposed_weight(weight, groups):
    """W'_γ[c, (o·kh + a)·kw + b] = W[γ·O/g + o, c, kh−1−a, kw−1−b]  -> (g, C/g, O/g·kh·kw).

    The kernel of dx as a convolution of dout: each filter turned by 180° and
    the roles of input and output channels swapped."""
    out_channels, channels, kernel_h, kernel_w = weight.shape
    by_group = weight.reshape(groups, out_channels // groups, channels, kernel_h, kernel_w)
    return np.ascontiguousarray(by_group[:, :, :, ::-1, ::-1].transpose(0, 2, 1, 3, 4)).reshape(
        groups, channels, -1)


def _dweight_from_dcols(total, weight_shape):
    """dW (O, C/g, kh, kw) from Σ dcols_γ @ x_γᵀ, indexed (g, (o·kh + a')·kw + b', c):
    dW[γ·O/g + o, c, a, b] = total[γ, (o, kh−1−a, kw−1−b), c], the flip of
    ``flipped_transposed_weight`` undone."""
    out_channels, channels, kernel_h, kernel_w = weight_shape
    groups = total.shape[0]
    by_tap = total.reshape(groups, out_channels // groups, kernel_h, kernel_w, channels)
    return by_tap[:, :, ::-1, ::-1].transpose(0, 1, 4, 2, 3).reshape(weight_shape)


def conv2d_weight_backward(dout, x, weight, stride, padding, dilation, groups):
    """dweight alone, where dx is not needed (a network's first convolution: its input is
    the data)."""
    return _backward(dout, x, weight, stride, padding, dilation, groups, False)[1]


def conv2d_backward(dout, x, weight, stride, padding, dilation, groups):
    """``(dx, dweight)``: see ``_backward``."""
    return _backward(dout, x, weight, stride, padding, dilation, groups, True)


def _backward(dout, x, weight, stride, padding, dilation, groups, input_grad):
    """``(dx, dweight)`` as the reference's conv2d_backward, a block of samples at a time;
    dx is None, and none of its work done, unless ``input_grad``.

    Per block: cols = im2col(x[block]) again, dW_γᵀ += cols_γ @ dout_γᵀ, then dx
    by one of three routes:

    * stride 1, not pointwise (``_dx_as_convolution_padding``): dx is itself a
      convolution, of dout padded by d·(k − 1) − p with the flipped, transposed
      kernel, dx[n,c,i,j] = Σ_{o,a,b} W[o,c,kh−1−a,kw−1−b]·dout_pad[n,o,i+a·d,j+b·d]:
      dcols = im2col(dout[block]) (O/g·kh·kw rows per group), dx_γ = W'_γ @ dcols_γ.
      One matrix product with K = O/g·kh·kw and a copy, instead of a thin
      product (K = O/g) and a scatter-add of kh·kw times more numbers.
      The same dcols gives dW, so x is not unfolded at all: dcols[(o, kh−1−a,
      kw−1−b), q] = dout[o, q − a·d + p] is the dout pixel that input pixel q
      met through tap (a, b), hence dW[o,c,a,b] = Σ_q x[c,q]·dcols[(o, kh−1−a,
      kw−1−b), q], the same products as Σ cols·dout summed over input pixels
      instead of output pixels (``_dweight_from_dcols``): one unfolding per
      block instead of two.
      With ``WINOGRAD_MIN_CHANNELS`` set, a 3×3 kernel and that many filters or
      more, that convolution goes by Winograd (``winograd.py``), after the dW pass.
    * pointwise: dx_γ = W_γᵀ @ dout_γ, written into dx directly.
    * otherwise, as the reference: dcols_γ = W_γᵀ @ dout_γ, dx = col2im(dcols).

    The samples are cut into ``DWEIGHT_CHUNKS`` chunks (then blocks); each
    chunk's dW is summed in float64 and the chunks' sums are added in chunk
    order, so the result depends neither on timing nor on the number of threads."""
    x, weight = np.ascontiguousarray(x), np.ascontiguousarray(weight)
    n, out_channels = x.shape[0], weight.shape[0]
    out_h, out_w = _output_size(x.shape, weight.shape[2:], stride, padding, dilation)
    window = _window(weight.shape[2:], stride, padding, dilation, out_h, out_w)
    weight_by_group = weight.reshape(groups, out_channels // groups, -1)   # (g, O/g, K)
    filters, rows = weight_by_group.shape[1:]
    pixels, in_pixels = out_h * out_w, x.shape[2] * x.shape[3]
    dout = np.ascontiguousarray(dout).reshape(n, groups, filters, pixels)
    dx = np.empty(x.shape, dtype=x.dtype) if input_grad else None
    dx_by_group = dx.reshape(n, groups, -1, in_pixels) if input_grad else None  # (N, g, C/g, H·W)
    pointwise = _is_pointwise(weight.shape[2:], stride, padding)
    dx_padding = None if pointwise or not input_grad else _dx_as_convolution_padding(
        weight.shape[2:], stride, padding, dilation)
    dx_by_winograd = dx_padding is not None and use_winograd(weight.shape[2:], stride, dilation,
                                                             groups, out_channels)
    if dx_by_winograd or not input_grad:
        dx_padding, dcols_shape = None, (0, 0)                          # dW only in the loop
    elif dx_padding is not None:
        flipped = flipped_transposed_weight(weight, groups)             # (g, C/g, O/g·kh·kw)
        dx_window = _window(weight.shape[2:], (1, 1), dx_padding, dilation, *x.shape[2:])
        dcols_shape = (groups * flipped.shape[2], in_pixels)
    else:
        dcols_shape = (groups * rows, pixels)
    dweight_from_dcols = dx_padding is not None                         # x is not unfolded
    channels_per_group = x.shape[1] // groups
    if dweight_from_dcols:                              # dW'_γ (O/g·kh·kw, C/g) from dcols
        cols_shape, dweight_shape = (0, 0), (groups, flipped.shape[2], channels_per_group)
    else:                                               # dW_γᵀ (C/g·kh·kw, O/g) from cols
        cols_shape = (0, 0) if pointwise else (groups * rows, pixels)
        dweight_shape = (groups, rows, filters)
    per_sample = (np.prod(cols_shape) + (0 if pointwise else np.prod(dcols_shape))) * x.itemsize
    per_block = _samples_per_block(per_sample, n)

    def scratch():
        shape = (0, 0) if pointwise else dcols_shape
        return (np.empty((per_block,) + cols_shape, dtype=x.dtype),
                np.empty((per_block,) + shape, dtype=x.dtype),
                np.empty((per_block,) + dweight_shape, dtype=x.dtype))

    def one_chunk(chunk, buffers):
        dweight = np.zeros(dweight_shape)                            # float64 partial sum
        for first, stop in _blocks(chunk_starts[chunk], chunk_starts[chunk + 1], per_block):
            count = stop - first
            cols, dcols, block_dweight = (buffer[:count] for buffer in buffers)
            dout_block = dout[first:stop]                               # (S, g, O/g, L)
            if dweight_from_dcols:
                im2col_samples(dout_block.reshape(count, out_channels, out_h, out_w), dcols,
                               *dx_window)
                dcols_by_group = dcols.reshape(count, groups, -1, in_pixels)
                # dW'_γ (O/g·kh·kw, C/g) = dcols_γ @ x_γᵀ: dcols streamed along its rows,
                # as cols is below
                np.matmul(dcols_by_group, x[first:stop].reshape(
                    count, groups, channels_per_group, in_pixels).transpose(0, 1, 3, 2),
                    out=block_dweight)
                add_samples(dweight.reshape(-1), block_dweight.reshape(count, -1))
                np.matmul(flipped, dcols_by_group, out=dx_by_group[first:stop])
                continue
            if pointwise:                                               # cols is x itself
                cols = x[first:stop].reshape(count, groups * rows, pixels)
            else:
                im2col_samples(x[first:stop], cols, *window)
            # dW_γᵀ = cols_γ @ dout_γᵀ (K, O/g): the same sums as dout_γ @ cols_γᵀ,
            # but BLAS streams cols along its rows, twice as fast for 16-64 filters
            np.matmul(cols.reshape(count, groups, rows, pixels), dout_block.transpose(0, 1, 3, 2),
                      out=block_dweight)
            add_samples(dweight.reshape(-1), block_dweight.reshape(count, -1))
            if not input_grad:
                continue
            if pointwise:
                np.matmul(weight_by_group.transpose(0, 2, 1), dout_block,
                          out=dx_by_group[first:stop])
            elif not dx_by_winograd:
                np.matmul(weight_by_group.transpose(0, 2, 1), dout_block,
                          out=dcols.reshape(count, groups, rows, pixels))
                col2im_samples(dcols, dx[first:stop], *window)
        return dweight

    chunk_count = min(n, DWEIGHT_CHUNKS)
    chunk_starts = [chunk * n // chunk_count for chunk in range(chunk_count + 1)]
    partial_sums = run_chunks(one_chunk, chunk_count, scratch,
                              hold_blas=out_channels * rows * pixels < SMALL_PRODUCT)
    total = sum(partial_sums)
    dweight = np.ascontiguousarray(_dweight_from_dcols(total, weight.shape) if dweight_from_dcols
                                   else total.transpose(0, 2, 1), dtype=x.dtype)
    if dx_by_winograd:
        flipped = np.ascontiguousarray(weight[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
        dx = _winograd(dout.reshape(n, out_channels, out_h, out_w), flipped,
                       _dx_as_convolution_padding(weight.shape[2:], stride, padding, dilation))
    return dx, dweight.reshape(weight.shape)
