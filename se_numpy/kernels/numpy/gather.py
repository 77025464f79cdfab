"""The Gather-Excite kernels (Hu et al., NeurIPS 2018), plain NumPy (math: ``functional/gather_excite.py``).

    gather   g[n,c,p,q] = mean of x[n,c,i,j] over the window of cell (p, q)
             (kernel 2e−1, stride e, padding e−1, padding not counted)
    excite   y[n,c,i,j] = x[n,c,i,j] · gate[n,c,row(i),col(j)]   (nearest upsampling)

Both are separable along the two axes. The gather is A_h · x · A_wᵀ with a
(oh × H) averaging matrix A_h whose row p holds 1/count_p on the rows of
window p; the upsampling is S_h · gate · S_wᵀ with a one-hot (H × oh) matrix
S_h. Their backward passes are the transposes.
"""
import numpy as np


def extent_output_size(size, extent):
    """Cells of the gather grid along one axis: ceil(size / e) (kernel 2e−1, stride e, padding e−1)."""
    return (size + 2 * (extent - 1) - (2 * extent - 1)) // extent + 1


def extent_windows(size, extent):
    """(start, stop) rows of each gather window along one axis, clipped to the map: int64 (oh, 2)."""
    starts = np.arange(extent_output_size(size, extent)) * extent - (extent - 1)
    return np.stack([np.maximum(starts, 0), np.minimum(starts + 2 * extent - 1, size)], axis=1)


def nearest_sources(out_size, in_size):
    """PyTorch's "nearest" rule: output row i reads input row min(⌊i · (in/out)⌋, in − 1),
    with the scale and the product in float32 exactly as ``F.interpolate`` computes them
    (the exact integer ⌊i·in/out⌋ differs from it for some sizes, e.g. 16 -> 122)."""
    scale = np.float32(in_size) / np.float32(out_size)
    rows = np.floor(np.arange(out_size, dtype=np.float32) * scale).astype(np.int64)
    return np.minimum(rows, in_size - 1)


def _averaging_matrix(size, extent):
    windows = extent_windows(size, extent)
    matrix = np.zeros((len(windows), size))
    for p, (start, stop) in enumerate(windows):
        matrix[p, start:stop] = 1.0 / (stop - start)
    return matrix


def _selection_matrix(out_size, in_size):
    matrix = np.zeros((out_size, in_size))
    matrix[np.arange(out_size), nearest_sources(out_size, in_size)] = 1.0
    return matrix


def source_runs(out_size, in_size):
    """first[p] .. first[p+1] − 1 are the output rows that read source row p (the sources never
    decrease, so each source covers one run of rows); int64 (in_size + 1,)."""
    return np.searchsorted(nearest_sources(out_size, in_size), np.arange(in_size + 1))


def ge_gather_forward(x, extent):
    """g = A_h · x · A_wᵀ per channel map: the window means.  (N,C,H,W) -> (N,C,oh,ow)."""
    rows, columns = _averaging_matrix(x.shape[2], extent), _averaging_matrix(x.shape[3], extent)
    return (rows @ x.astype(np.float64) @ columns.T).astype(x.dtype)


def ge_gather_backward(dg, x_shape, extent):
    """dx = A_hᵀ · dg · A_w: each cell's gradient shared by the 1/count of its window."""
    rows, columns = _averaging_matrix(x_shape[2], extent), _averaging_matrix(x_shape[3], extent)
    return (rows.T @ dg.astype(np.float64) @ columns).astype(dg.dtype)


def ge_excite_forward(x, gate):
    """y = x · (S_h · gate · S_wᵀ): every pixel times the gate of its nearest cell."""
    upsampled = gate[:, :, nearest_sources(x.shape[2], gate.shape[2])]
    return x * upsampled[:, :, :, nearest_sources(x.shape[3], gate.shape[3])]


def ge_excite_backward(dy, x, gate):
    """dx = dy · U(gate);  dgate = S_hᵀ · (dy·x) · S_w: each cell sums the pixels it covers."""
    rows = _selection_matrix(x.shape[2], gate.shape[2])
    columns = _selection_matrix(x.shape[3], gate.shape[3])
    dx = ge_excite_forward(dy, gate)
    dgate = rows.T @ (dy.astype(np.float64) * x) @ columns
    return dx, dgate.astype(gate.dtype)
