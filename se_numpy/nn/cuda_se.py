"""An SE block that keeps its feature maps on the GPU between steps.

The ``cuda`` backend (``kernels/cuda``) copies NumPy inputs up and results down on every call,
which is what lets the whole library run on the ``cuda`` backend, but a
training step would then cross the PCIe bus four times per SE block.
``CudaSEBlock`` takes device arrays and returns device arrays instead.

Where each step runs, and why
-----------------------------
::

    forward                                   where           launches   crosses the bus
    z = squeeze(x)        (N,C,H,W) -> (N,C)  GPU, tree        1          z down: N·C numbers
    s = σ(W2 δ(W1 z + b1) + b2)   (Eq. 3)     host, functional 0          s up:   N·C numbers
    y = s·x  (or s·x + shortcut, "Axpy")      GPU              1

    backward
    ds = Σ_ij dy·x                            GPU, tree        1          ds down: N·C
    dz, dW1, db1, dW2, db2 = excitation'(ds)  host, functional 0          dz up:   N·C
    dx = dy·s + dz/(HW)                       GPU              1

Four launches per block and step, the fewest possible: each of the four
passes over the map needs the result of the host step before it. The
excitation's two matrix products are (N, C)·(C, C/r): for N = 64, C = 256,
r = 16 that is 262 144 multiply-adds on 16 384 numbers, microseconds for BLAS
on the host, and copying N·C floats (64 KiB) each way costs about as much as
one kernel launch. Writing GEMM kernels for matrices this small would add
launches (several µs each), not save time.

The rule for moving data
------------------------
The feature maps x, shortcut, y, dy and dx never leave the device. Only the
(N, C) vectors z, s, ds, dz cross, once each per step, and the weights and
their gradients live on the host as NumPy arrays (they are updated there by
any NumPy optimiser). ``forward`` and ``backward`` also accept NumPy feature
maps (copied up once); their results are always device arrays.

The excitation is ``functional.excitation_forward`` / ``excitation_backward``,
the same code every other SE block runs; only the four map passes are here.
"""
import numpy as np

from ..functional.se import excitation_backward, excitation_forward


def _gpu():
    """The cuda backend, imported on first use (importing ``nn`` never touches CUDA)."""
    from ..kernels import cuda
    return cuda


def _as_matrix(weight, name):
    """An FC weight (out, in), given as such or as a 1x1 convolution (out, in, 1, 1)."""
    weight = np.asarray(weight)
    if weight.ndim == 4 and weight.shape[2:] == (1, 1):
        return weight.reshape(weight.shape[:2])
    if weight.ndim != 2:
        raise ValueError(f"{name}: expected shape (out, in) or (out, in, 1, 1), "
                         f"got {weight.shape}")
    return weight


class CudaSEBlock:
    """SE block with average squeeze, ReLU and sigmoid (paper Fig. 1, Eqs. 2-4) on the GPU.

    Args:
        fc1_weight: W1, shape (C/r, C).   fc1_bias: b1, shape (C/r,) or None.
        fc2_weight: W2, shape (C, C/r).   fc2_bias: b2, shape (C,) or None.
        All float32 or all float64: the feature maps must have the same dtype.

    After ``backward``, ``grads`` holds dL/dW1, dL/db1, dL/dW2, dL/db2 under the
    PyTorch names ``fc1.weight``, ``fc1.bias``, ``fc2.weight``, ``fc2.bias``
    (accumulated over calls, like ``Parameter.grad``; ``zero_grad`` clears).
    """

    def __init__(self, fc1_weight, fc1_bias, fc2_weight, fc2_bias):
        self.dtype = np.asarray(fc1_weight).dtype
        if self.dtype.type not in (np.float32, np.float64):
            raise TypeError(f"fc1_weight: expected dtype float32 or float64, got {self.dtype}")
        hidden, channels = np.shape(fc1_weight)
        if np.shape(fc2_weight) != (channels, hidden):
            raise ValueError(f"fc2_weight: expected shape {(channels, hidden)}, "
                             f"got {np.shape(fc2_weight)}")
        self.params = {"fc1.weight": np.asarray(fc1_weight), "fc1.bias": fc1_bias,
                       "fc2.weight": np.asarray(fc2_weight), "fc2.bias": fc2_bias}
        for name, expected in (("fc1.bias", (hidden,)), ("fc2.bias", (channels,))):
            if self.params[name] is not None and np.shape(self.params[name]) != expected:
                raise ValueError(f"{name}: expected shape {expected}, "
                                 f"got {np.shape(self.params[name])}")
        for name, value in self.params.items():
            if value is not None and np.asarray(value).dtype != self.dtype:
                raise TypeError(f"{name}: expected dtype {self.dtype} (same as fc1.weight), "
                                f"got {np.asarray(value).dtype}")
        self.channels = channels
        self.grads = {}
        self.zero_grad()
        self._cache = None

    @classmethod
    def from_state_dict(cls, state_dict, prefix=""):
        """Build from ``SEBlock.state_dict()`` (or a PyTorch/timm one turned into NumPy).

        The FC weights may come as matrices (out, in) or, as ``SEBlock`` and timm
        write them, as 1x1 convolutions (out, in, 1, 1)."""
        return cls(_as_matrix(state_dict[prefix + "fc1.weight"], prefix + "fc1.weight"),
                   state_dict.get(prefix + "fc1.bias"),
                   _as_matrix(state_dict[prefix + "fc2.weight"], prefix + "fc2.weight"),
                   state_dict.get(prefix + "fc2.bias"))

    def zero_grad(self):
        self.grads = {name: None if value is None else np.zeros_like(value)
                      for name, value in self.params.items()}

    def _accumulate(self, dw1, db1, dw2, db2):
        for name, gradient in (("fc1.weight", dw1), ("fc1.bias", db1),
                               ("fc2.weight", dw2), ("fc2.bias", db2)):
            if gradient is not None:
                self.grads[name] += gradient

    def _check_map(self, array, name):
        if tuple(array.shape[1:2]) != (self.channels,) or len(array.shape) != 4:
            raise ValueError(f"{name}: expected shape (N, {self.channels}, H, W), "
                             f"got {tuple(array.shape)}")
        if np.dtype(array.dtype) != self.dtype:
            raise TypeError(f"{name}: expected dtype {self.dtype} (the weights' dtype), "
                            f"got {array.dtype}")
        return _gpu().to_device(array)

    def forward(self, x, shortcut=None):
        """y = s·x, or out = s·x + shortcut when a shortcut is given (two launches).

        x, shortcut: (N, C, H, W) device (or NumPy) arrays. Returns a device array.
        """
        gpu = _gpu()
        x = self._check_map(x, "x")
        z = gpu.squeeze_forward(x).copy_to_host()                   # launch 1, N·C down
        s, excitation_cache = excitation_forward(
            z, self.params["fc1.weight"], self.params["fc1.bias"],
            self.params["fc2.weight"], self.params["fc2.bias"])     # host, Eq. 3
        s_on_device = gpu.to_device(s)                              # N·C up
        if shortcut is None:
            y = gpu.scale_forward(x, s_on_device)                   # launch 2
        else:
            shortcut = self._check_map(shortcut, "shortcut")
            if tuple(shortcut.shape) != tuple(x.shape):
                raise ValueError(f"shortcut: expected shape {tuple(x.shape)}, "
                                 f"got {tuple(shortcut.shape)}")
            y = gpu.scale_add_forward(x, s_on_device, shortcut)     # launch 2 (Axpy)
        self._cache = (x, s_on_device, excitation_cache, shortcut is not None)
        return y

    __call__ = forward

    def backward(self, dy):
        """dL/dx from dL/dy (two launches); weight gradients go to ``grads``.

        Returns dx, or ``(dx, dshortcut)`` after a forward with a shortcut, where
        dshortcut is ``dy`` itself (the addition passes it through unchanged).
        """
        if self._cache is None:
            raise RuntimeError("backward called before forward")
        gpu = _gpu()
        x, s_on_device, excitation_cache, had_shortcut = self._cache
        dy = self._check_map(dy, "dy")
        if tuple(dy.shape) != tuple(x.shape):
            raise ValueError(f"dy: expected shape {tuple(x.shape)}, got {tuple(dy.shape)}")
        ds = gpu.se_backward_ds(dy, x).copy_to_host()                # launch 1, N·C down
        dz, *weight_gradients = excitation_backward(ds, excitation_cache)   # host
        self._accumulate(*weight_gradients)
        dx = gpu.se_backward_dx(dy, s_on_device, np.ascontiguousarray(dz))  # launch 2, dz up
        return (dx, dy) if had_shortcut else dx
