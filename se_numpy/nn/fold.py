"""Batch norm folded into the preceding convolution, for evaluation.

In evaluation mode a ``BatchNorm2d`` is a fixed per-channel affine map of the
convolution's output z = W * x (+ c):

    BN(z)[o] = a[o]·z[o] + b[o],   a = γ / sqrt(σ²_running + eps),   b = β − μ_running·a

so BN(W * x + c) = (a·W) * x + (a·c + b): one convolution with filters
W'[o] = a[o]·W[o] and bias c'[o] = a[o]·c[o] + b[o]. ``fold_batch_norm(model)``
returns a copy of the model computed that way: every BN pass over a feature
map is gone, and the bias is added by the convolution while each block of its
output is in cache (``kernels/numba/conv.py``; the reference adds it in place).
Where the model applies ReLU right after the BN (``forward_relu``), the ReLU is
what remains of the BN: one pass, in place.

Which convolution a BN follows is read off the model's structure: a
``BatchNorm2d`` registered right after a ``Conv2d`` in the same parent, with as
many channels as the convolution has filters, as in every model of the zoo
(``conv1``, ``bn1``; ``downsample.0``, ``downsample.1``; PyTorch's naming). A
BN registered after a convolution but applied to its *input* (a pre-activation
layout) would be folded wrongly; the tests compare folded and unfolded models.

The folded model is for evaluation only (its statistics are the running ones):
``train()`` mode raises in the folded BN's forward. timm's models do not fold;
``benchmarks/bench_zoo_eval.py --fold`` says when it was used.
"""
import copy

import numpy as np

from .conv import Conv2d
from .module import Module, _require_cache
from .norm import BatchNorm2d
from .parameter import Parameter


class FoldedBatchNorm(Module):
    """What is left of a ``BatchNorm2d`` folded into the convolution before it.

    forward(x) = x (the convolution already applied a·W and the bias);
    forward_relu(x) = max(x, 0), written over x, which is the convolution's fresh
    output and read by nothing else. ``backward`` passes the gradient through
    (times 1[out > 0] after ``forward_relu``), so gradient checks of a folded
    model in evaluation mode still work."""

    def __init__(self, num_features):
        super().__init__()
        self.num_features = int(num_features)

    def _check_mode(self):
        if self.training:
            raise RuntimeError("FoldedBatchNorm: this model's batch norm is folded into its "
                               "convolutions with the running statistics; it is for evaluation "
                               "only. Train the unfolded model.")

    def forward(self, x):
        self._check_mode()
        self._cache = None
        return x

    def forward_relu(self, x):
        self._check_mode()
        np.maximum(x, x.dtype.type(0), out=x)
        self._cache = x
        return x

    def backward(self, dy):
        if self._cache is None:
            return dy
        return dy * (_require_cache(self) > 0)

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def flops(self, input_shape):
        return 0

    def extra_repr(self):
        return f"{self.num_features}"


def batch_norm_affine(norm):
    """BN's evaluation map as (a, b), float64 (C,): BN(z) = a·z + b per channel."""
    if norm.running_mean is None:
        raise ValueError("fold_batch_norm: a BatchNorm2d without running statistics "
                         "(track_running_stats=False) normalises with the batch's; it cannot fold")
    scale = 1.0 / np.sqrt(norm.running_var.astype(np.float64) + norm.eps)
    if norm.weight is not None:
        scale = scale * norm.weight.data.astype(np.float64)
    shift = -norm.running_mean.astype(np.float64) * scale
    if norm.bias is not None:
        shift = shift + norm.bias.data.astype(np.float64)
    return scale, shift


def fold_into(conv, norm):
    """Make ``conv`` compute norm(conv(x)) in evaluation mode: W' = a·W, c' = a·c + b."""
    scale, shift = batch_norm_affine(norm)
    dtype = conv.weight.dtype
    weight = conv.weight.data.astype(np.float64) * scale[:, None, None, None]
    bias = shift if conv.bias is None else shift + scale * conv.bias.data.astype(np.float64)
    conv.weight = Parameter(weight.astype(dtype))
    conv.bias = Parameter(bias.astype(dtype))


def _pairs(module):
    """(conv, name of the BN after it) for each Conv2d → BatchNorm2d pair among the children."""
    children = list(module.named_children())
    for (_, first), (name, second) in zip(children, children[1:]):
        if (isinstance(first, Conv2d) and isinstance(second, BatchNorm2d)
                and second.num_features == first.out_channels):
            yield first, name


def fold_batch_norm(model):
    """A copy of ``model`` in evaluation mode, each BatchNorm2d folded into its convolution.

    The copy's forward equals ``model.eval()``'s to a few roundings (the fold is
    computed in float64, then rounded to the weights' dtype); ``model`` itself is
    not changed. Returns the copy; ``len(folded_batch_norms(copy))`` says how many
    were folded."""
    if not isinstance(model, Module):
        raise TypeError(f"fold_batch_norm: expected a Module, got {type(model).__name__}")
    # the caches (a forward's inputs, kept for its backward) are not copied
    skip_caches = {id(module._cache): None for module in model.modules()
                   if module._cache is not None}
    folded = copy.deepcopy(model, skip_caches)
    for module in list(folded.modules()):
        for conv, name in list(_pairs(module)):
            fold_into(conv, getattr(module, name))
            _replace_child(module, name, FoldedBatchNorm(conv.out_channels))
    return folded.eval()


def _replace_child(parent, name, child):
    """parent.name = child, in the same place among the children (a Sequential's order)."""
    parent._modules[name] = child
    object.__setattr__(parent, name, child)


def folded_batch_norms(model):
    """The names of the model's folded batch norms."""
    return [name for name, module in model.named_modules() if isinstance(module, FoldedBatchNorm)]
