"""Numba convolution: each sample unfolded into a worker's own buffer, one BLAS call per group.

Read ``kernels/numpy/conv.py`` first: the same sums, there for the whole batch
at once. Unfolding the whole batch is what this file avoids: for SE-ResNet-20's
first stage that is 128 × 144 × 1024 float32 = 75 MB, written to fresh memory,
then read back by the matrix product. Here each sample is unfolded into a
small buffer owned by one worker thread (144 × 1024 float32 = 590 kB, which
stays in that core's L2 cache) and multiplied there by a single-threaded BLAS
call (``threads.py`` says why). The loops release the GIL (``nogil``), so the
workers run them side by side; they copy and add in the reference's order,
so unfolding and folding agree with it bit for bit.
"""
import numpy as np
from numba import njit, prange

from ..contract import conv_output_size
from .threads import run_chunks

# dW is summed in float64 per chunk of samples, the chunks' sums then in chunk
# order: a fixed count, so the result is the same for any number of threads.
DWEIGHT_CHUNKS = 8

# Per-sample products below this many multiply-adds run on one BLAS thread even
# when one worker does them all (batch 1): OpenBLAS's pool costs more than it
# gains there. A CIFAR 3×3 convolution is 2.4 M; ResNet-50's at 56×56, 116 M.
SMALL_PRODUCT = 1 << 23


@njit(cache=True)
def _inside_range(offset, stride, size, count):
    """The outputs q in [first, stop) whose input position q·stride + offset lies in [0, size)."""
    first = min(max(0, -(offset // stride)), count)   # smallest q with q·stride + offset >= 0
    stop = min(count, (size - 1 - offset) // stride + 1) if size - 1 - offset >= 0 else 0
    return first, max(first, stop)


@njit(nogil=True, cache=True)
def im2col_sample_whole_rows(planes, cols, kernel_h, kernel_w, pad_h, pad_w,
                              dilation_h, dilation_w, height, width, out_h):
    """``im2col_sample`` for stride 1 with OW = W (a "same" convolution, e.g. 3×3, padding 1).

    Then a row of cols is the image read from a shifted start: cols[row, p·W + q]
    = plane[(p + a·dh − ph)·W + q + b·dw − pw], one contiguous copy of all its
    inside rows at once instead of one short copy per image row. The copy
    also reads, at each row's ends, pixels of the neighbouring image row where
    the padding should be; those few entries are set to 0 afterwards."""
    for c in range(planes.shape[0]):
        for a in range(kernel_h):
            p_first, p_stop = _inside_range(a * dilation_h - pad_h, 1, height, out_h)
            for b in range(kernel_w):
                row = (c * kernel_h + a) * kernel_w + b
                column_offset = b * dilation_w - pad_w
                first, stop = _inside_range(column_offset, 1, width, width)
                cols[row, :p_first * width] = 0                   # padding rows above
                cols[row, p_stop * width:] = 0                    # and below
                if p_first >= p_stop or first >= stop:
                    cols[row, p_first * width:p_stop * width] = 0
                    continue
                begin, end = p_first * width + first, (p_stop - 1) * width + stop
                source = (p_first + a * dilation_h - pad_h) * width + first + column_offset
                cols[row, begin:end] = planes[c, source:source + end - begin]
                for p in range(p_first, p_stop):                  # left and right padding
                    for q in range(first):
                        cols[row, p * width + q] = 0
                    for q in range(stop, width):
                        cols[row, p * width + q] = 0


@njit(nogil=True, cache=True)
def im2col_sample(image_stack, cols, kernel_h, kernel_w, stride_h, stride_w,
                   pad_h, pad_w, dilation_h, dilation_w, out_h, out_w):
    """One sample's columns: cols[(c·kh + a)·kw + b, p·OW + q] = x_pad[c, p·sh + a·dh, q·sw + b·dw]."""
    channels, height, width = image_stack.shape
    if stride_h == 1 and stride_w == 1 and out_w == width:
        im2col_sample_whole_rows(image_stack.reshape(channels, height * width), cols,
                                  kernel_h, kernel_w, pad_h, pad_w, dilation_h, dilation_w,
                                  height, width, out_h)
        return
    for c in range(channels):
        for a in range(kernel_h):
            for b in range(kernel_w):
                row = (c * kernel_h + a) * kernel_w + b
                column_offset = b * dilation_w - pad_w
                # the q range that reads real pixels is computed once, so the
                # copies have no padding test per element
                first, stop = _inside_range(column_offset, stride_w, width, out_w)
                for p in range(out_h):
                    i = p * stride_h - pad_h + a * dilation_h
                    start = p * out_w
                    if i < 0 or i >= height:
                        first_here, stop_here = out_w, out_w      # a padding row
                    else:
                        first_here, stop_here = first, stop
                    # element loops, not slices: a slice is a new array view each
                    # time, which costs more than the few pixels it copies
                    for q in range(first_here):
                        cols[row, start + q] = 0                  # left padding
                    for q in range(first_here, stop_here):
                        cols[row, start + q] = image_stack[c, i, q * stride_w + column_offset]
                    for q in range(stop_here, out_w):
                        cols[row, start + q] = 0                  # right padding


def _window(kernel, stride, padding, dilation, out_h, out_w):
    """The trailing (kernel, stride, padding, dilation, output size) arguments of the loops."""
    return (kernel[0], kernel[1], stride[0], stride[1], padding[0], padding[1],
            dilation[0], dilation[1], out_h, out_w)


def _output_size(shape, kernel, stride, padding, dilation):
    return (conv_output_size(shape[2], kernel[0], stride[0], padding[0], dilation[0]),
            conv_output_size(shape[3], kernel[1], stride[1], padding[1], dilation[1]))


@njit(parallel=True, cache=True)
def im2col_loop(x, cols, window):
    for sample in prange(x.shape[0]):     # samples write disjoint blocks of cols
        im2col_sample(x[sample], cols[sample], *window)
    return cols


def im2col(x, kernel, stride, padding, dilation):
    """x (N,C,H,W) -> cols (N, C·kh·kw, OH·OW); row c·kh·kw + a·kw + b, as the reference."""
    x = np.ascontiguousarray(x)
    n, c = x.shape[:2]
    out_h, out_w = _output_size(x.shape, kernel, stride, padding, dilation)
    cols = np.empty((n, c * kernel[0] * kernel[1], out_h * out_w), dtype=x.dtype)
    return im2col_loop(x, cols, _window(kernel, stride, padding, dilation, out_h, out_w))


@njit(nogil=True, cache=True)
def col2im_sample_whole_rows(cols, planes, kernel_h, kernel_w, pad_h, pad_w,
                              dilation_h, dilation_w, height, width, out_h):
    """``col2im_sample`` for stride 1 with OW = W: the adjoint of ``im2col_sample_whole_rows``.

    The padding entries of each cols row are zeroed first, so the one
    contiguous addition adds 0 to the pixels the copy read by mistake."""
    for c in range(planes.shape[0]):
        for a in range(kernel_h):
            p_first, p_stop = _inside_range(a * dilation_h - pad_h, 1, height, out_h)
            for b in range(kernel_w):
                row = (c * kernel_h + a) * kernel_w + b
                column_offset = b * dilation_w - pad_w
                first, stop = _inside_range(column_offset, 1, width, width)
                if p_first >= p_stop or first >= stop:
                    continue
                for p in range(p_first, p_stop):
                    for q in range(first):
                        cols[row, p * width + q] = 0
                    for q in range(stop, width):
                        cols[row, p * width + q] = 0
                begin, end = p_first * width + first, (p_stop - 1) * width + stop
                target = (p_first + a * dilation_h - pad_h) * width + first + column_offset - begin
                for k in range(begin, end):      # a loop, not ``+=`` on slices: no temporary
                    planes[c, target + k] += cols[row, k]


@njit(nogil=True, cache=True)
def col2im_sample(cols, image_stack, kernel_h, kernel_w, stride_h, stride_w,
                   pad_h, pad_w, dilation_h, dilation_w, out_h, out_w):
    """Adjoint of ``im2col_sample``: each pixel receives the sum of its entries in cols.

    (a, b) outermost, as in the reference's col2im, so every pixel adds its
    contributions in the same order; entries that came from padding are
    dropped. ``cols`` is a scratch buffer: the whole-rows path zeroes its
    padding entries."""
    channels, height, width = image_stack.shape
    image_stack[:, :, :] = 0
    if stride_h == 1 and stride_w == 1 and out_w == width:
        col2im_sample_whole_rows(cols, image_stack.reshape(channels, height * width),
                                  kernel_h, kernel_w, pad_h, pad_w, dilation_h, dilation_w,
                                  height, width, out_h)
        return
    for c in range(channels):
        for a in range(kernel_h):
            for b in range(kernel_w):
                row = (c * kernel_h + a) * kernel_w + b
                column_offset = b * dilation_w - pad_w
                first, stop = _inside_range(column_offset, stride_w, width, out_w)
                for p in range(out_h):
                    i = p * stride_h - pad_h + a * dilation_h
                    if i < 0 or i >= height:
                        continue
                    start = p * out_w
                    for q in range(first, stop):         # a loop: no slice views, no temporary
                        image_stack[c, i, q * stride_w + column_offset] += cols[row, start + q]


@njit(parallel=True, cache=True)
def col2im_loop(cols, dx, kernel_h, kernel_w, stride_h, stride_w,
                pad_h, pad_w, dilation_h, dilation_w, out_h, out_w):
    """The batch's fold, one (n, c) plane per parallel job: planes never overlap, so no
    atomics, and the caller's columns are only read. The per-sample fold above
    needs a scratch copy of them and, element by element, is several times slower
    for this; the convolution has its scratch buffer anyway and uses that one."""
    n_images, channels, height, width = dx.shape
    for plane in prange(n_images * channels):
        n, c = plane // channels, plane % channels
        dx[n, c] = 0
        for a in range(kernel_h):             # (a, b) outermost, as the reference
            for b in range(kernel_w):
                row = (c * kernel_h + a) * kernel_w + b
                for p in range(out_h):
                    i = p * stride_h - pad_h + a * dilation_h
                    if i < 0 or i >= height:
                        continue
                    for q in range(out_w):
                        j = q * stride_w - pad_w + b * dilation_w
                        if 0 <= j < width:
                            dx[n, c, i, j] += cols[n, row, p * out_w + q]
    return dx


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


def conv2d_forward(x, weight, stride, padding, dilation, groups):
    """Convolution without bias, the reference's conv2d_forward computed one sample at a time.

    Per sample n: cols = im2col(x[n]) (C·kh·kw, L) in the worker's own buffer,
    then out[n, group γ's filters] = W_γ @ cols_γ, written in place.  -> (N, O, OH, OW)."""
    x, weight = np.ascontiguousarray(x), np.ascontiguousarray(weight)
    n, out_channels = x.shape[0], weight.shape[0]
    out_h, out_w = _output_size(x.shape, weight.shape[2:], stride, padding, dilation)
    window = _window(weight.shape[2:], stride, padding, dilation, out_h, out_w)
    weight_by_group = weight.reshape(groups, out_channels // groups, -1)   # (g, O/g, K)
    filters, rows = weight_by_group.shape[1:]
    out = np.empty((n, out_channels, out_h * out_w), dtype=x.dtype)
    pointwise = _is_pointwise(weight.shape[2:], stride, padding)

    def scratch():
        return np.empty((groups * rows, out_h * out_w), dtype=x.dtype)

    def one_sample(sample, cols):
        if pointwise:
            cols = x[sample].reshape(groups * rows, out_h * out_w)
        else:
            im2col_sample(x[sample], cols, *window)
        for group in range(groups):
            np.matmul(weight_by_group[group], cols[group * rows:(group + 1) * rows],
                      out=out[sample, group * filters:(group + 1) * filters])

    run_chunks(one_sample, n, scratch,
               hold_blas=out_channels * rows * out_h * out_w < SMALL_PRODUCT)
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


def conv2d_backward(dout, x, weight, stride, padding, dilation, groups):
    """``(dx, dweight)`` as the reference's conv2d_backward, one sample at a time.

    Per sample n: cols = im2col(x[n]) again, dW_γᵀ += cols_γ @ dout_γᵀ, then dx
    by one of two routes:

    * stride 1 (``_dx_as_convolution_padding``): dx is itself a convolution,
      of dout padded by d·(k − 1) − p with the flipped, transposed kernel,
      dx[n,c,i,j] = Σ_{o,a,b} W[o,c,kh−1−a,kw−1−b]·dout_pad[n,o,i + a·d,j + b·d]:
      dcols = im2col(dout[n]) (O/g·kh·kw rows per group), dx_γ = W'_γ @ dcols_γ.
      One matrix product with K = O/g·kh·kw and a copy, instead of a thin
      product (K = O/g) and a scatter-add of kh·kw times more numbers.
    * otherwise, as the reference: dcols_γ = W_γᵀ @ dout_γ, dx[n] = col2im(dcols).

    The samples are cut into ``DWEIGHT_CHUNKS`` chunks; each chunk's dW is
    summed in float64 and the chunks' sums are added in chunk order, so the
    result depends neither on timing nor on the number of threads."""
    x, weight = np.ascontiguousarray(x), np.ascontiguousarray(weight)
    n, out_channels = x.shape[0], weight.shape[0]
    out_h, out_w = _output_size(x.shape, weight.shape[2:], stride, padding, dilation)
    window = _window(weight.shape[2:], stride, padding, dilation, out_h, out_w)
    dout = np.ascontiguousarray(dout).reshape(n, out_channels, out_h * out_w)
    weight_by_group = weight.reshape(groups, out_channels // groups, -1)   # (g, O/g, K)
    filters, rows = weight_by_group.shape[1:]
    dx = np.empty(x.shape, dtype=x.dtype)
    pointwise = _is_pointwise(weight.shape[2:], stride, padding)
    dx_padding = None if pointwise else _dx_as_convolution_padding(
        weight.shape[2:], stride, padding, dilation)
    if dx_padding is not None:
        flipped = flipped_transposed_weight(weight, groups)             # (g, C/g, O/g·kh·kw)
        dx_window = _window(weight.shape[2:], (1, 1), dx_padding, dilation, *x.shape[2:])
        dx_rows, pixels = flipped.shape[2], x.shape[2] * x.shape[3]
        dx_by_group = dx.reshape(n, groups, -1, pixels)                 # (N, g, C/g, H·W)

    def scratch():
        cols = np.empty((groups * rows, out_h * out_w), dtype=x.dtype)
        dcols = (np.empty((groups * dx_rows, pixels), dtype=x.dtype) if dx_padding is not None
                 else np.empty_like(cols))
        # dW_γᵀ = cols_γ @ dout_γᵀ (K, O/g): the same sums as dout_γ @ cols_γᵀ, but
        # BLAS streams cols along its rows, twice as fast for 16-64 filters
        return cols, dcols, np.empty((rows, filters), dtype=x.dtype)

    def one_chunk(chunk, buffers):
        cols, dcols, sample_dweight = buffers
        dweight = np.zeros((groups, rows, filters))                  # float64 partial sum, ᵀ
        for sample in range(chunk_starts[chunk], chunk_starts[chunk + 1]):
            if pointwise:                  # cols is x[n] itself, dcols is dx[n] itself
                cols = x[sample].reshape(groups * rows, out_h * out_w)
                dcols = dx[sample].reshape(groups * rows, out_h * out_w)
            else:
                im2col_sample(x[sample], cols, *window)
            if dx_padding is not None:
                im2col_sample(dout[sample].reshape(out_channels, out_h, out_w), dcols, *dx_window)
            for group in range(groups):
                group_rows = slice(group * rows, (group + 1) * rows)
                dout_group = dout[sample, group * filters:(group + 1) * filters]
                np.matmul(cols[group_rows], dout_group.T, out=sample_dweight)
                dweight[group] += sample_dweight
                if dx_padding is not None:
                    np.matmul(flipped[group], dcols[group * dx_rows:(group + 1) * dx_rows],
                              out=dx_by_group[sample, group])
                else:
                    np.matmul(weight_by_group[group].T, dout_group, out=dcols[group_rows])
            if not pointwise and dx_padding is None:
                col2im_sample(dcols, dx[sample], *window)
        return dweight

    chunk_count = min(n, DWEIGHT_CHUNKS)
    chunk_starts = [chunk * n // chunk_count for chunk in range(chunk_count + 1)]
    partial_sums = run_chunks(one_chunk, chunk_count, scratch,
                              hold_blas=out_channels * rows * out_h * out_w < SMALL_PRODUCT)
    dweight = np.ascontiguousarray(sum(partial_sums).transpose(0, 2, 1), dtype=x.dtype)
    return dx, dweight.reshape(weight.shape)
