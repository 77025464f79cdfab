"""``Network``: a model that runs its named children one after another.

It is ``Sequential`` with meaningful names (``conv1``, ``layer1``, ``fc``)
instead of "0", "1", ..., so state-dict keys match torchvision's and timm's.
Backward runs the children in reverse, each consuming its own cache.

timm's affordances, for every ImageNet model:

    model.forward_features(x)    # the last feature map, before the global pool
    model.reset_classifier(5)    # a new classifier with 5 outputs (0: none, pooled features)
    create(name, num_classes=0)  # pooled features (N, C) instead of logits

The head (``global pool -> [dropout] -> classifier``) starts at the child named
by ``head_start``; ``classifier_name`` names the classifier (dotted for nested
heads such as RegNet's ``head.fc``).
"""
import numpy as np

from .._validation import check_nchw
from ..nn.chain import NamedSequential
from ..nn.container import Identity, Sequential
from ..nn.dropout import Dropout
from ..nn.linear import Linear
from ..nn.residual import projection_shortcut
from ..nn.selective_kernel_blocks import REPLACE_3X3, selective_kernel_unit


class Network(NamedSequential):
    """Base class of every model in the registry.

    Subclasses assign their children in execution order (every layer built in
    the model's dtype) and call ``self._finish()`` at the end of ``__init__``.
    """

    in_channels = None
    head_start = "avgpool"         # first child of the head (the global pool)
    classifier_name = "fc"

    def forward(self, x):
        check_nchw(x, "x", channels=self.in_channels)
        return super().forward(x)

    def child_input_shapes(self, input_shape):
        shape = tuple(input_shape)
        if len(shape) != 4 or shape[1] != self.in_channels:
            raise ValueError(f"input_shape: expected (N, {self.in_channels}, H, W), got {shape}")
        return super().child_input_shapes(shape)

    # ------------------------------------------------------------ timm's affordances
    def forward_features(self, x):
        """The feature map before the head, (N, C, h, w), as timm's ``forward_features``."""
        check_nchw(x, "x", channels=self.in_channels)
        if self.head_start not in self._order:
            raise NotImplementedError(f"{type(self).__name__} has no head named "
                                      f"{self.head_start!r}")
        for name in self._order[:self._order.index(self.head_start)]:
            x = getattr(self, name)(x)
        return x

    def _classifier_parent(self):
        *path, last = self.classifier_name.split(".")
        parent = self
        for part in path:
            parent = getattr(parent, part)
        return parent, last

    def get_classifier(self):
        parent, last = self._classifier_parent()
        return getattr(parent, last)

    def reset_classifier(self, num_classes, seed=0):
        """Replace the classifier by a fresh one with ``num_classes`` outputs (0: Identity).

        Its input width and dtype are the old classifier's; ``seed`` initialises it.
        """
        parent, last = self._classifier_parent()
        if getattr(self, "num_features", None) is None:      # models built without _head
            self.num_features = getattr(parent, last).in_features
        dtype = next(iter(p.dtype for p in self.parameters()), np.float32)
        setattr(parent, last, classifier(self.num_features, num_classes, dtype, seed))
        self.num_classes = int(num_classes)
        return self

    def _head(self, num_features, num_classes, drop_rate=0.0, dtype=np.float32, rng=None,
              pool_name="avgpool", pool=None, after_pool=()):
        """global pool -> [after_pool layers] -> dropout (when drop_rate > 0) -> classifier.

        ``num_features`` is the classifier's input width.
        """
        from ..nn.pool import GlobalAvgPool
        self.num_features = int(num_features)
        setattr(self, pool_name, pool if pool is not None else GlobalAvgPool())
        for name, module in after_pool:
            setattr(self, name, module)
        if drop_rate:
            self.drop = Dropout(drop_rate)
        setattr(self, self.classifier_name, classifier(num_features, num_classes, dtype, rng))


def nested_head(num_features, num_classes, drop_rate=0.0, dtype=np.float32, rng=None):
    """timm's ``ClassifierHead`` as one child: global_pool -> [drop] -> fc (keys head.fc.*)."""
    from ..nn.pool import GlobalAvgPool
    layers = {"global_pool": GlobalAvgPool()}
    if drop_rate:
        layers["drop"] = Dropout(drop_rate)
    layers["fc"] = classifier(num_features, num_classes, dtype, rng)
    return NamedSequential.of(**layers)


def classifier(in_features, num_classes, dtype=np.float32, rng=None):
    """Linear(in_features, num_classes), or Identity for num_classes = 0 (timm: pooled features)."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) \
            or num_classes < 0:
        raise ValueError(f"num_classes: expected an int >= 0, got {num_classes!r}")
    if num_classes == 0:
        return Identity()
    return Linear(in_features, num_classes, dtype=dtype, rng=rng)


def residual_stage(block, in_channels, planes, num_blocks, stride, stage_index, se_config=None,
                   dtype=np.float32, rng=None, shortcut=projection_shortcut, **block_options):
    """One stage: ``num_blocks`` residual units, the first with ``stride`` and a projection.

    The projection shortcut (``downsample.0/1``, or ``shortcut(...)`` for the
    "d" ResNets' average-pool one) is used exactly where the shape changes
    (stride != 1 or a different channel count), He et al.'s option B. With
    ``se_config.placement == "replace_3x3"`` (Selective Kernel) the stage's units
    are the SK twins of ``block``, with SK's attention width 1/reduction.
    Returns (Sequential of blocks, output channels).
    """
    if se_config is not None and se_config.placement == REPLACE_3X3:
        if stage_index in se_config.stages:       # the unit's 3x3 becomes an SK layer
            block = selective_kernel_unit(block)
            block_options = dict(block_options, sk_options={
                "rd_ratio": 1.0 / se_config.reductions[stage_index]})
        se_config = None
    blocks = []
    out_channels = planes * block.expansion
    placement = se_config.placement if se_config is not None else "standard"
    for index in range(num_blocks):
        block_stride = stride if index == 0 else 1
        downsample = None
        if block_stride != 1 or in_channels != out_channels:
            downsample = shortcut(in_channels, out_channels, block_stride, dtype, rng)
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
