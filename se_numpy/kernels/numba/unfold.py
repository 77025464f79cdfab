"""Unfolding (im2col) and folding (col2im) one sample, the loops under ``conv.py``.

cols[(c·kh + a)·kw + b, p·OW + q] = x_pad[c, p·sh + a·dh, q·sw + b·dw]: each
row of cols is one kernel tap (c, a, b) over every output pixel. The loops
copy and add in the reference's order (``kernels/numpy/conv.py``), so
unfolding and folding agree with it bit for bit; they release the GIL
(``nogil``), so the convolution's workers run them side by side.
"""
from numba import njit, prange


@njit(cache=True)
def _inside_range(offset, stride, size, count):
    """The outputs q in [first, stop) whose input position q·stride + offset lies in [0, size)."""
    first = min(max(0, -(offset // stride)), count)   # smallest q with q·stride + offset >= 0
    stop = min(count, (size - 1 - offset) // stride + 1) if size - 1 - offset >= 0 else 0
    return first, max(first, stop)


@njit(nogil=True, cache=True)
def _copy(target, source):
    """target[:] = source[:] as a loop over two 1-d views: 3-4x faster than a slice
    assignment between 2-d arrays, which Numba compiles as a general strided copy."""
    for k in range(target.shape[0]):
        target[k] = source[k]


@njit(nogil=True, cache=True)
def _add(target, source):
    """target[:] += source[:], the same way."""
    for k in range(target.shape[0]):
        target[k] += source[k]


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
                _copy(cols[row, begin:end], planes[c, source:source + end - begin])
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
                target, plane = cols[row], image_stack[c]       # 1-d and 2-d views, made once
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
                        target[start + q] = 0                     # left padding
                    for q in range(first_here, stop_here):
                        target[start + q] = plane[i, q * stride_w + column_offset]
                    for q in range(stop_here, out_w):
                        target[start + q] = 0                     # right padding


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
                _add(planes[c, target + begin:target + end], cols[row, begin:end])


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
                source, plane = cols[row], image_stack[c]
                for p in range(out_h):
                    i = p * stride_h - pad_h + a * dilation_h
                    if i < 0 or i >= height:
                        continue
                    start = p * out_w
                    for q in range(first, stop):         # a loop: no slice views, no temporary
                        plane[i, q * stride_w + column_offset] += source[start + q]


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


@njit(parallel=True, cache=True)
def im2col_loop(x, cols, window):
    for sample in prange(x.shape[0]):     # samples write disjoint blocks of cols
        im2col_sample(x[sample], cols[sample], *window)
    return cols


@njit(nogil=True, cache=True)
def im2col_samples(images, cols, kernel_h, kernel_w, stride_h, stride_w,
                   pad_h, pad_w, dilation_h, dilation_w, out_h, out_w):
    """``im2col_sample`` for each of a few samples: images (S, C, H, W) -> cols (S, C·kh·kw, L).

    One call per block of samples instead of one per sample: a call from
    Python costs microseconds, as much as unfolding a whole 8×8 sample."""
    for sample in range(images.shape[0]):
        im2col_sample(images[sample], cols[sample], kernel_h, kernel_w, stride_h, stride_w,
                      pad_h, pad_w, dilation_h, dilation_w, out_h, out_w)


@njit(nogil=True, cache=True)
def col2im_samples(cols, images, kernel_h, kernel_w, stride_h, stride_w,
                   pad_h, pad_w, dilation_h, dilation_w, out_h, out_w):
    """``col2im_sample`` for each of a few samples: cols (S, C·kh·kw, L) -> images (S, C, H, W)."""
    for sample in range(images.shape[0]):
        col2im_sample(cols[sample], images[sample], kernel_h, kernel_w, stride_h, stride_w,
                      pad_h, pad_w, dilation_h, dilation_w, out_h, out_w)
