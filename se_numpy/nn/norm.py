"""``BatchNorm2d`` as ``torch.nn.BatchNorm2d`` (math in functional/norm.py)."""
import numpy as np

from .._validation import check_nchw, check_same_dtype
from ..functional.norm import (batch_norm2d_backward, batch_norm2d_forward,
                               batch_norm2d_relu_forward, update_running_stats)
from .module import Module, _require_cache
from .parameter import Parameter


class BatchNorm2d(Module):
    """Per-channel batch normalisation with learnable scale γ (``weight``) and shift β (``bias``).

    Parameters ``weight`` (ones) and ``bias`` (zeros), shape (C,), when ``affine``.
    Buffers (when ``track_running_stats``): ``running_mean`` (zeros),
    ``running_var`` (ones) and ``num_batches_tracked`` (int64 scalar array).

    * ``train()`` mode: normalise with the batch statistics, then update the
      running ones in place (``functional.norm.update_running_stats``) and add 1
      to ``num_batches_tracked``. ``momentum=None`` uses 1/num_batches_tracked
      as the momentum: a cumulative average over all batches seen.
    * ``eval()`` mode: normalise with the running statistics; without
      ``track_running_stats`` the batch statistics are used in both modes
      (PyTorch's rule).

    Input dtype must match the parameters' (``astype`` converts the module); with
    ``affine=False, track_running_stats=False`` the module holds no arrays and
    accepts float32 and float64 alike.
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, dtype=np.float32):
        super().__init__()
        self.num_features = int(num_features)
        self.eps, self.momentum = float(eps), momentum
        self.affine, self.track_running_stats = bool(affine), bool(track_running_stats)
        if affine:
            self.weight = Parameter(np.ones(num_features, dtype=dtype))
            self.bias = Parameter(np.zeros(num_features, dtype=dtype))
        else:
            self.weight, self.bias = None, None
        if track_running_stats:
            self.register_buffer("running_mean", np.zeros(num_features, dtype=dtype))
            self.register_buffer("running_var", np.ones(num_features, dtype=dtype))
            self.register_buffer("num_batches_tracked", np.array(0, dtype=np.int64))
        else:
            self.running_mean = self.running_var = self.num_batches_tracked = None

    def _module_dtype(self):
        """The dtype the module holds now (``astype`` may have changed it); None if it holds nothing."""
        if self.weight is not None:
            return self.weight.dtype
        if self.running_mean is not None:
            return self.running_mean.dtype
        return None

    def forward(self, x):
        return self._forward(x, batch_norm2d_forward)

    def forward_relu(self, x):
        """ReLU(BN(x)) in one pass over the map (a residual branch's BN → ReLU).

        ``backward`` then returns dL/dx through both; no ReLU mask is kept."""
        return self._forward(x, batch_norm2d_relu_forward)

    def _forward(self, x, forward_function):
        check_nchw(x, "x", channels=self.num_features)
        if self._module_dtype() is not None:
            reference = np.empty(0, dtype=self._module_dtype())
            check_same_dtype(reference, x, "BatchNorm2d's parameters", "x")
        use_batch_statistics = self.training or not self.track_running_stats
        weight = self.weight.data if self.weight is not None else None
        bias = self.bias.data if self.bias is not None else None
        out, self._cache = forward_function(x, weight, bias, self.running_mean,
                                            self.running_var, use_batch_statistics, self.eps)
        if self.training and self.track_running_stats:
            self._update_running_stats(x.shape[0] * x.shape[2] * x.shape[3])
        return out

    def _update_running_stats(self, count):
        # In place (like PyTorch's running_mean.mul_().add_()): a plain assignment
        # would replace the registered buffer with an ordinary attribute.
        self.num_batches_tracked[...] += 1
        momentum = 1.0 / int(self.num_batches_tracked) if self.momentum is None else self.momentum
        new_mean, new_var = update_running_stats(self.running_mean, self.running_var,
                                                 self._cache.batch_mean,
                                                 self._cache.batch_variance, count, momentum)
        self.running_mean[...] = new_mean
        self.running_var[...] = new_var

    def backward(self, dy):
        dx, dweight, dbias = batch_norm2d_backward(dy, _require_cache(self))
        if self.affine:
            self.weight.accumulate(dweight)
            self.bias.accumulate(dbias)
        return dx

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def flops(self, input_shape):
        """0: the paper counts multiply-accumulates of conv and FC layers only.

        (At inference, batch norm folds into the preceding convolution's weights.)"""
        return 0

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")
