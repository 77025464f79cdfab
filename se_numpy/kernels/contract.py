"""The backend contract: every kernel, its arguments, what it reads and writes.

``CONTRACT`` below has one row per operation. Every backend package
(``kernels/numpy``, ``kernels/numba``, ``kernels/cuda``) implements each row
as a function of that name and those arguments, in a file of the row's
``file`` name, and ``bind`` exports it with the one shared input check. The
rest is derived from the table, never written out again:

* the conformance test (``tests/test_kernels_contract.py``, every backend);
* the warm-up and the example inputs (``example_arguments``);
* the bytes a kernel must move at least, in both benchmarks (``minimum_bytes``);
* the kernel table of ``docs/kernels.md`` (``markdown_table``).

Roles say what kind of array an argument is; ``n, c, h, w`` are the input
map's dimensions, ``o`` the number of filters, ``(oh, ow)`` a window's output
grid, ``kk = kh·kw``:

    map           (n, c, h, w)        a feature map (or its gradient)
    out_map       (n, o, oh, ow)      a convolution's output (or its gradient)
    pooled        (n, c, oh, ow)      a pooling's output (or its gradient)
    pooled_index  (n, c, oh, ow) int64  flat input position i·w + j of a window's maximum
    columns       (n, c·kk, oh·ow)    unfolded receptive fields (im2col)
    vector        (n, c)              one number per channel map (z, s, ds, dz)
    index         (n, c) int64        flat position i·w + j inside one channel map
    plane         (n, 1, h, w)        one number per pixel, pooled over the channels
    plane_index   (n, 1, h, w) int64  the channel c of a pixel's maximum over c
    channel       (c,)                one number per channel (batch norm)
    filter        (o,)                one number per filter (a convolution's bias)
    weight        (o, c/g, kh, kw)    convolution filters
    shape         the (n, c, h, w) tuple of a map the kernel writes
    option        kernel, stride, padding, dilation ((int, int) pairs), groups,
                  extent (Gather-Excite's int e) or eps (batch norm's float ε)

Adding a kernel: one row here, one function per backend (same file name),
and the docs table (``python -m se_numpy.kernels``).
"""
from collections import namedtuple

import numpy as np

MAP, OUT_MAP, POOLED, POOLED_INDEX = "map", "out_map", "pooled", "pooled_index"
COLUMNS, VECTOR, INDEX, CHANNEL, WEIGHT = "columns", "vector", "index", "channel", "weight"
FILTER = "filter"
PLANE, PLANE_INDEX = "plane", "plane_index"
SHAPE, OPTION = "shape", "option"

# roles whose arrays are 4-d feature maps: a kernel refuses them empty
FEATURE_MAPS = (MAP, OUT_MAP, POOLED, POOLED_INDEX, PLANE, PLANE_INDEX, SHAPE)
INTEGER_ROLES = (INDEX, POOLED_INDEX, PLANE_INDEX)

Op = namedtuple("Op", "name file kind arguments outputs")
Op.__doc__ = """One kernel: ``arguments`` and ``outputs`` are ``(name, role)`` pairs;
``kind`` is "core" (``functional/`` calls it) or "helper" (tests, benchmarks, docs, and
the reference's compositions: ``batch_norm_train_forward`` is three helper passes)."""


def _row(name, file, kind, arguments, outputs):
    def pairs(text):
        return tuple(tuple(item.split(":")) for item in text.split())
    return Op(name, file, kind, pairs(arguments), pairs(outputs))


CONTRACT = (
    # squeeze, scale and the fused SE passes (paper Eqs. 2 and 4; functional/se.py)
    _row("squeeze_forward", "se", "core", "x:map", "z:vector"),
    _row("squeeze_backward", "se", "core", "dz:vector x_shape:shape", "dx:map"),
    _row("max_squeeze_forward", "se", "core", "x:map", "z:vector argmax:index"),
    _row("max_squeeze_backward", "se", "core", "dz:vector argmax:index x_shape:shape", "dx:map"),
    _row("scale_forward", "se", "core", "x:map s:vector", "y:map"),
    _row("scale_backward", "se", "core", "dy:map x:map s:vector", "dx:map ds:vector"),
    _row("se_backward_ds", "se", "core", "dy:map x:map", "ds:vector"),
    _row("se_backward_dx", "se", "core", "dy:map s:vector dz:vector", "dx:map"),
    _row("scale_add_forward", "se", "core", "u:map s:vector shortcut:map", "out:map"),
    # convolution (functional/conv.py)
    _row("im2col", "conv", "helper",
         "x:map kernel:option stride:option padding:option dilation:option", "cols:columns"),
    _row("col2im", "conv", "helper",
         "cols:columns x_shape:shape kernel:option stride:option padding:option "
         "dilation:option", "dx:map"),
    _row("conv2d_forward", "conv", "core",
         "x:map weight:weight stride:option padding:option dilation:option groups:option",
         "out:out_map"),
    # with a bias, and dweight alone (the data under a first convolution needs no dx)
    _row("conv2d_bias_forward", "conv", "core",
         "x:map weight:weight bias:filter stride:option padding:option dilation:option "
         "groups:option", "out:out_map"),
    _row("conv2d_weight_backward", "conv", "core",
         "dout:out_map x:map weight:weight stride:option padding:option dilation:option "
         "groups:option", "dweight:weight"),
    _row("conv2d_backward", "conv", "core",
         "dout:out_map x:map weight:weight stride:option padding:option dilation:option "
         "groups:option", "dx:map dweight:weight"),
    # batch normalisation (functional/norm.py): the four passes of a training step, the
    # building blocks of the train_forward/train_backward rows below
    _row("batch_norm_statistics", "norm", "helper", "x:map", "mean:channel variance:channel"),
    _row("batch_norm_normalize", "norm", "helper",
         "x:map mean:channel inverse_std:channel weight:channel bias:channel",
         "y:map normalized:map"),
    _row("batch_norm_backward_sums", "norm", "core", "dy:map normalized:map",
         "sum_dy:channel sum_dy_normalized:channel"),
    _row("batch_norm_backward_dx", "norm", "helper",
         "dy:map normalized:map scale:channel sum_dy:channel sum_dy_normalized:channel",
         "dx:map"),
    # batch normalisation followed by ReLU, fused (functional/norm.py, nn/residual.py)
    _row("batch_norm_relu_normalize", "norm", "helper",
         "x:map mean:channel inverse_std:channel weight:channel bias:channel",
         "y:map normalized:map"),
    _row("batch_norm_relu_backward_sums", "norm", "helper",
         "dy:map normalized:map weight:channel bias:channel",
         "sum_dy:channel sum_dy_normalized:channel"),
    _row("batch_norm_relu_backward_dx", "norm", "helper",
         "dy:map normalized:map weight:channel bias:channel scale:channel sum_dy:channel "
         "sum_dy_normalized:channel", "dx:map"),
    # evaluation-mode batch norm: the per-channel affine map, alone and followed by ReLU
    _row("batch_norm_affine", "norm", "core", "x:map scale:channel shift:channel", "y:map"),
    _row("batch_norm_affine_relu", "norm", "core", "x:map scale:channel shift:channel", "y:map"),
    # a training step's batch norm, one call per direction: statistics, inverse_std =
    # 1/sqrt(σ² + eps) and normalize; backward sums and dx (with ReLU: the relu passes)
    _row("batch_norm_train_forward", "norm", "core",
         "x:map eps:option weight:channel bias:channel",
         "mean:channel variance:channel inverse_std:channel y:map normalized:map"),
    _row("batch_norm_train_backward", "norm", "core",
         "dy:map normalized:map weight:channel inverse_std:channel",
         "sum_dy:channel sum_dy_normalized:channel dx:map"),
    _row("batch_norm_relu_train_forward", "norm", "core",
         "x:map eps:option weight:channel bias:channel",
         "mean:channel variance:channel inverse_std:channel y:map normalized:map"),
    _row("batch_norm_relu_train_backward", "norm", "core",
         "dy:map normalized:map weight:channel bias:channel inverse_std:channel",
         "sum_dy:channel sum_dy_normalized:channel dx:map"),
    # the end of a residual unit, ReLU(pre-activation), and ReLU's backward from its output
    # (functional/residual.py)
    _row("add_relu_forward", "residual", "core", "u:map shortcut:map", "out:map"),
    _row("scale_add_relu_forward", "residual", "core", "u:map s:vector shortcut:map", "out:map"),
    _row("relu_backward", "residual", "core", "dout:map out:map", "dx:map"),
    # the same as scale_add_relu_forward, over u (evaluation mode: u is not read again)
    _row("scale_add_relu_forward_in_place", "residual", "core", "u:map s:vector shortcut:map",
         "out:map"),
    # pooling (functional/pool.py)
    _row("max_pool2d_forward", "pool", "core",
         "x:map kernel:option stride:option padding:option", "out:pooled argmax:pooled_index"),
    _row("max_pool2d_backward", "pool", "core",
         "dout:pooled argmax:pooled_index x_shape:shape", "dx:map"),
    _row("avg_pool2d_forward", "pool", "core",
         "x:map kernel:option stride:option padding:option", "out:pooled"),
    _row("avg_pool2d_backward", "pool", "core",
         "dout:pooled x_shape:shape kernel:option stride:option padding:option", "dx:map"),
    # the per-pixel mean and max over the channels of spatial attention (functional/cbam.py)
    _row("channel_pool_forward", "channel_pool", "core", "x:map",
         "mean:plane max:plane argmax:plane_index"),
    _row("channel_pool_backward", "channel_pool", "core",
         "dmean:plane dmax:plane argmax:plane_index x_shape:shape", "dx:map"),
    # the spatial gate product of CBAM and scSE, y = x · g per pixel (functional/cbam.py, scse.py)
    _row("spatial_scale_forward", "spatial_gate", "core", "x:map g:plane", "y:map"),
    _row("spatial_scale_backward", "spatial_gate", "core", "dy:map x:map g:plane",
         "dx:map dg:plane"),
    # Gather-Excite: the extent-e gather and the upsampled gate (functional/gather_excite.py)
    _row("ge_gather_forward", "gather", "core", "x:map extent:option", "g:pooled"),
    _row("ge_gather_backward", "gather", "core", "dg:pooled x_shape:shape extent:option",
         "dx:map"),
    _row("ge_excite_forward", "gather", "core", "x:map gate:pooled", "y:map"),
    _row("ge_excite_backward", "gather", "core", "dy:map x:map gate:pooled",
         "dx:map dgate:pooled"),
)

OPS = {op.name: op for op in CONTRACT}
FILES = ("se", "conv", "norm", "residual", "pool", "channel_pool", "spatial_gate", "gather")
# the files with GPU kernels in ``kernels/cuda``; the others run there on the host (``cuda/host.py``)
GPU_FILES = ("se", "channel_pool", "spatial_gate")
# GPU kernels whose host functions also pass index arrays they compute (windows, nearest
# sources), so they are not launched from the roles alone: the GPU benchmark builds those
# arrays itself (``bench/cuda.py`` ``_gather_cases``), the PTX test spells out their signatures
GPU_FILES_WITH_GEOMETRY = ("gather",)


def conv_output_size(size, kernel, stride, padding, dilation=1):
    """Output length of a convolution/pooling along one axis (floor mode, as PyTorch)."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


# ======================================================================= the shared check
def _map_shape(value):
    return tuple(value) if isinstance(value, (tuple, list)) else tuple(np.shape(value))


def check_feature_maps(op, arguments):
    """Raise ``ValueError`` unless every feature-map argument of ``op`` is 4-d and non-empty,
    and every plane is (N, 1, H, W) of the row's map (or ``x_shape``).

    An empty batch (N = 0), no channels or an H = W = 0 map has no mean, no
    maximum and nothing to launch; every backend refuses it here, in one place."""
    map_shape = None
    for (name, role), value in zip(op.arguments, arguments):
        if role in FEATURE_MAPS:
            shape = _map_shape(value)
            if len(shape) != 4 or min(shape) < 1:
                raise ValueError(f"{op.name}: {name} must be a non-empty (N, C, H, W) map, "
                                 f"got shape {shape}")
            if role in (MAP, SHAPE) and map_shape is None:
                map_shape = shape
    # a plane is one number per pixel of the map: (N, 1, H, W), never silently a whole map
    for (name, role), value in zip(op.arguments, arguments):
        if role in (PLANE, PLANE_INDEX) and map_shape is not None:
            expected = (map_shape[0], 1) + tuple(map_shape[2:])
            if _map_shape(value) != expected:
                raise ValueError(f"{op.name}: {name} must be a plane of shape {expected} "
                                 f"(one number per pixel), got shape {_map_shape(value)}")


def checked(op, function):
    """``function`` behind ``check_feature_maps`` for row ``op``, with its name and docstring."""
    def kernel(*arguments):
        check_feature_maps(op, arguments)
        return function(*arguments)
    kernel.__name__ = kernel.__qualname__ = op.name
    kernel.__doc__, kernel.__wrapped__ = function.__doc__, function
    kernel.__module__ = function.__module__
    return kernel


def bind(namespace, *modules):
    """Put every contract kernel found in ``modules`` into ``namespace``, behind the shared check.

    Raises ``AttributeError`` naming a row that no module implements."""
    for op in CONTRACT:
        found = [module for module in modules if hasattr(module, op.name)]
        if not found:
            raise AttributeError(f"{namespace.get('__name__')}: no function {op.name!r} "
                                 f"(a row of kernels/contract.py)")
        namespace[op.name] = checked(op, getattr(found[0], op.name))


# ======================================================================= derived: bytes, inputs
# The windows the examples and the benchmarks use: 2×2 pooling, stride 2; a
# "same" 3×3 convolution with as many filters as channels.
EXAMPLE_OPTIONS = {
    "pool": {"kernel": (2, 2), "stride": (2, 2), "padding": (0, 0)},
    "conv": {"kernel": (3, 3), "stride": (1, 1), "padding": (1, 1), "dilation": (1, 1),
             "groups": 1},
    # extent 2 on an even map gives the 2×2 pool's grid, so "pooled" fits both
    "gather": {"extent": 2},
    "norm": {"eps": 1e-5},
}


def _role_shapes(shape):
    """{role: array shape} for an (n, c, h, w) input map and the example windows."""
    n, c, h, w = shape
    pool, conv = EXAMPLE_OPTIONS["pool"], EXAMPLE_OPTIONS["conv"]
    ph, pw = (conv_output_size(size, k, s, p) for size, k, s, p in
              zip((h, w), pool["kernel"], pool["stride"], pool["padding"]))
    oh, ow = (conv_output_size(size, k, s, p, d) for size, k, s, p, d in
              zip((h, w), conv["kernel"], conv["stride"], conv["padding"], conv["dilation"]))
    kh, kw = conv["kernel"]
    return {MAP: (n, c, h, w), OUT_MAP: (n, c, oh, ow), POOLED: (n, c, ph, pw),
            POOLED_INDEX: (n, c, ph, pw), COLUMNS: (n, c * kh * kw, oh * ow),
            VECTOR: (n, c), INDEX: (n, c), CHANNEL: (c,), FILTER: (c,), PLANE: (n, 1, h, w),
            PLANE_INDEX: (n, 1, h, w),
            WEIGHT: (c, c // conv["groups"], kh, kw)}


def minimum_bytes(name, shape, itemsize):
    """Bytes kernel ``name`` must move on an ``shape`` map: every array argument read
    once, every output written once (int64 indices are 8 bytes), example windows."""
    op = OPS[name]
    shapes = _role_shapes(shape)
    total = 0
    for _, role in op.arguments + op.outputs:
        if role in shapes:
            total += int(np.prod(shapes[role])) * (8 if role in INTEGER_ROLES else itemsize)
    return total


def example_arguments(name, shape, dtype, seed=0):
    """A valid argument tuple for kernel ``name`` on an ``shape`` map (random, reproducible).

    Maps are uniform in (-1, 1), so ties are improbable; gates and batch-norm
    vectors are positive; indices lie inside the map they point into."""
    op = OPS[name]
    rng = np.random.default_rng(seed)
    shapes = _role_shapes(shape)
    positions = shape[2] * shape[3]           # valid flat indices into one channel map
    arguments = []
    for argument, role in op.arguments:
        if role == SHAPE:
            arguments.append(tuple(shape))
        elif role == OPTION:
            arguments.append(EXAMPLE_OPTIONS[op.file][argument])
        elif role == INDEX:
            arguments.append(rng.integers(0, positions, size=shapes[role]).astype(np.int64))
        elif role == POOLED_INDEX:
            arguments.append(_window_positions(rng, shape, shapes[role]))
        elif role == PLANE_INDEX:
            arguments.append(rng.integers(0, shape[1], size=shapes[role]).astype(np.int64))
        elif role in (VECTOR, CHANNEL, FILTER):
            arguments.append(rng.uniform(0.5, 1.5, size=shapes[role]).astype(dtype))
        else:
            arguments.append(rng.uniform(-1, 1, size=shapes[role]).astype(dtype))
    return tuple(arguments)


def _window_positions(rng, shape, pooled_shape):
    """A flat input index i·W + j inside each output cell's example pooling window."""
    pool = EXAMPLE_OPTIONS["pool"]
    _, _, oh, ow = pooled_shape
    rows = (np.arange(oh)[:, None] * pool["stride"][0] - pool["padding"][0]
            + rng.integers(0, pool["kernel"][0], size=pooled_shape))
    columns = (np.arange(ow)[None, :] * pool["stride"][1] - pool["padding"][1]
               + rng.integers(0, pool["kernel"][1], size=pooled_shape))
    rows, columns = np.clip(rows, 0, shape[2] - 1), np.clip(columns, 0, shape[3] - 1)
    return (rows * shape[3] + columns).astype(np.int64)


def warm_up(backend, dtypes=(np.float32, np.float64), shape=(1, 2, 4, 4)):
    """Call every kernel of ``backend`` once per dtype (compiles or loads Numba's cache)."""
    for dtype in dtypes:
        for op in CONTRACT:
            getattr(backend, op.name)(*example_arguments(op.name, shape, dtype))


# ======================================================================= derived: docs
def markdown_table():
    """The kernel table of ``docs/kernels.md``: one line per row of ``CONTRACT``."""
    lines = ["| kernel | file | kind | reads | writes |", "|---|---|---|---|---|"]
    for op in CONTRACT:
        reads = ", ".join(f"{name} ({role})" for name, role in op.arguments
                          if role not in (SHAPE, OPTION))
        writes = ", ".join(f"{name} ({role})" for name, role in op.outputs)
        lines.append(f"| `{op.name}` | {op.file}.py | {op.kind} | {reads} | {writes} |")
    return "\n".join(lines)

