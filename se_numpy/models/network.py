"""``Network``: a model that runs its named children one after another.

It is ``Sequential`` with meaningful names (``conv1``, ``layer1``, ``fc``)
instead of "0", "1", ..., so state-dict keys match torchvision's and timm's.
Backward runs the children in reverse, each consuming its own cache.
"""
import numpy as np

from .._validation import check_nchw
from ..nn.composed import ComposedCounting
from ..nn.container import Sequential
from ..nn.module import Module
from ..nn.residual import projection_shortcut


class Network(ComposedCounting, Module):
    """Base class of every model in the registry.

    Subclasses assign their children in execution order (every layer built in
    the model's dtype) and call ``self._finish()`` at the end of ``__init__``.
    """

    in_channels = None

    def _finish(self):
        self._order = list(self._modules)

    def forward(self, x):
        check_nchw(x, "x", channels=self.in_channels)
        for name in self._order:
            x = getattr(self, name)(x)
        return x

    def backward(self, dy):
        for name in reversed(self._order):
            dy = getattr(self, name).backward(dy)
        return dy

    def child_input_shapes(self, input_shape):
        entries, shape = [], tuple(input_shape)
        if len(shape) != 4 or shape[1] != self.in_channels:
            raise ValueError(f"input_shape: expected (N, {self.in_channels}, H, W), got {shape}")
        for name in self._order:
            entries.append((name, shape))
            shape = getattr(self, name).output_shape(shape)
        return entries

    def output_shape(self, input_shape):
        name, shape = self.child_input_shapes(input_shape)[-1]
        return getattr(self, name).output_shape(shape)


def residual_stage(block, in_channels, planes, num_blocks, stride, stage_index, se_config=None,
                   dtype=np.float32, rng=None, **block_options):
    """One stage: ``num_blocks`` residual units, the first with ``stride`` and a projection.

    The projection shortcut (``downsample.0/1``) is used exactly where the shape
    changes (stride != 1 or a different channel count), He et al.'s option B.
    Returns (Sequential of blocks, output channels).
    """
    blocks = []
    out_channels = planes * block.expansion
    placement = se_config.placement if se_config is not None else "standard"
    for index in range(num_blocks):
        block_stride = stride if index == 0 else 1
        downsample = None
        if block_stride != 1 or in_channels != out_channels:
            downsample = projection_shortcut(in_channels, out_channels, block_stride, dtype, rng)
        attention = None
        if se_config is not None:
            channels = block.attention_channels(in_channels, planes, placement,
                                                block_options.get("groups", 1),
                                                block_options.get("base_width", 64))
            attention = se_config.make(channels, stage_index, dtype, rng)
        blocks.append(block(in_channels, planes, stride=block_stride, downsample=downsample,
                            attention=attention, placement=placement, dtype=dtype, rng=rng,
                            **block_options))
        in_channels = out_channels
    return Sequential(*blocks), out_channels
