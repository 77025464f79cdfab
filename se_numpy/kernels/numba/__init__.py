"""The ``numba`` backend: the reference's kernels compiled for the CPU, same names and signatures.

Files (each with the same name as the reference file it speeds up):

    threads.py  OMP_WAIT_POLICY, BLAS thread control, the convolution workers (imported first)
    rows.py     the (N·C, H·W) row view, the row helpers, the serial/parallel pair
    se.py       squeeze, scale, the fused SE passes
    conv.py     im2col, col2im and the convolution by blocks of samples
    unfold.py   the per-sample unfolding and folding loops under conv.py
    conv_one_sample.py  a batch of one sample shared by its output (opt-in); the bias pass
    winograd.py Winograd F(2x2, 3x3) for 3x3 stride-1 convolutions (opt-in)
    direct_conv.py  a direct 3x3 convolution, a study measured against conv.py (not a route)
    norm.py     the batch-norm passes, batch norm + ReLU fused, one region per direction
    norm_channels.py  the per-channel loops under norm.py's one-region training rows
    residual.py the end of a residual unit: addition and ReLU in one pass
    pool.py     max and average pooling
    channel_pool.py  the per-pixel mean and max over the channels (spatial attention)
    spatial_gate.py  the spatial gate product y = x · g (one gate per pixel) and its backward
    gather.py   Gather-Excite's extent gather and upsampled gate
    naive.py    the slower first drafts, kept to show what each trick buys

``cache=True`` stores the compiled code next to the source, so a second
process starts in a fraction of a second instead of recompiling. Readonly
inputs (e.g. from ``np.broadcast_to``) are a different Numba type and compile
their own specialisation once.
"""
from . import threads  # noqa: F401  (first: sets OMP_WAIT_POLICY before any parallel loop)

import numba  # noqa: E402
import numpy as np  # noqa: E402

from .. import contract  # noqa: E402
from . import channel_pool, conv, gather, norm, pool, residual, rows, se, spatial_gate  # noqa: E402

NAME = "numba"
conv_output_size = contract.conv_output_size


def check_available():
    """Raise ``RuntimeError`` with the reason if Numba cannot compile and run a kernel here."""
    try:
        se.squeeze_forward_loop.serial(np.ones((1, 2)), np.empty(1), 2.0)
    except Exception as error:   # LLVM, threading-layer or cache-directory problems show up here
        raise RuntimeError(f"numba {numba.__version__} is installed but cannot run kernels: "
                           f"{error}") from error


contract.bind(globals(), se, conv, norm, residual, pool, channel_pool, spatial_gate, gather)
