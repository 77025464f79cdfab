"""Parameters and multiply-accumulates of a model, counted from shapes alone.

    sn.analysis.count_params(model)                     # int
    sn.analysis.count_flops(model, (1, 3, 224, 224))    # int, multiply-accumulates
    sn.analysis.flops_breakdown(model, (1, 3, 224, 224))  # one row per layer

The convention is the one under which the paper reports ResNet-50 at 3.86
GFLOPs and SE-ResNet-50 at 3.87 (Table 2): "FLOPs" there are multiply-
accumulates (MACs) of convolutions and fully connected layers, plus, for every
SE block, the squeeze (H·W·C additions per image) and the scale (H·W·C
multiplications). Batch norm, ReLU, pooling and the residual additions count
zero. Each layer's ``flops(input_shape)`` applies this rule; this module adds
them up, walking the model with the input shape each layer receives, so no
forward pass on real data is needed.

The paper's closed form for the SE overhead (Sec. 3.3, Eq. 5) is also here:
with S stages of N_s blocks whose SE blocks see C_s channels,

    extra parameters = (2/r) Σ_s N_s · C_s²      (+ Σ_s N_s (C_s/r + C_s) biases)
"""
from collections import namedtuple

from ..functional.se import hidden_width
from ..nn.container import Sequential
from ..nn.se import SEBlock

LayerCost = namedtuple("LayerCost", "name kind input_shape output_shape macs params")
LayerCost.__doc__ = """One counted layer: its dotted name, class, shapes, MACs and parameters."""


def count_params(model):
    """Number of trainable scalars (parameters, not buffers such as running_mean)."""
    return int(sum(parameter.size for parameter in model.parameters()))


def _children_with_shapes(module, input_shape):
    """[(child name, its input shape)] for a composite, or None for a counted unit.

    An SE block is one unit (its ``flops`` covers squeeze, both FC layers and
    scale), so the walk stops there.
    """
    if isinstance(module, SEBlock):
        return None
    if hasattr(module, "child_input_shapes"):
        return module.child_input_shapes(input_shape)
    if isinstance(module, Sequential):
        entries, shape = [], tuple(input_shape)
        for name, child in module.named_children():
            entries.append((name, shape))
            shape = child.output_shape(shape)
        return entries
    return None


def flops_breakdown(model, input_shape):
    """List of ``LayerCost`` rows, one per counted unit, in execution order.

    Units are single layers (Conv2d, Linear, BatchNorm2d, ...) and whole SE
    blocks. ``sum(row.macs) == count_flops(model, input_shape)``.
    """
    rows = []

    def walk(module, name, shape):
        children = _children_with_shapes(module, shape)
        if children is None:
            rows.append(LayerCost(name or type(module).__name__, type(module).__name__,
                                  tuple(shape), tuple(module.output_shape(shape)),
                                  int(module.flops(shape)), count_params(module)))
            return
        for child_name, child_shape in children:
            walk(getattr(module, child_name), f"{name}.{child_name}" if name else child_name,
                 child_shape)

    walk(model, "", tuple(input_shape))
    return rows


def count_flops(model, input_shape):
    """Multiply-accumulates of one forward pass at ``input_shape`` (N, C, H, W), as an int.

    Proportional to N. Divide by 1e9 for the paper's "GFLOPs" (which are GMACs).
    """
    if len(tuple(input_shape)) != 4:
        raise ValueError(f"input_shape: expected (N, C, H, W), got {tuple(input_shape)}")
    return int(sum(row.macs for row in flops_breakdown(model, input_shape)))


def se_params_closed_form(blocks_per_stage, channels_per_stage, reduction=16, bias=True):
    """Extra parameters of SE blocks by the paper's Eq. 5: (2/r) Σ_s N_s · C_s² (+ biases).

    Args:
        blocks_per_stage: N_s, e.g. (3, 4, 6, 3) for ResNet-50.
        channels_per_stage: C_s, the channels each SE block sees (256, 512, 1024, 2048).
        reduction: r, one ratio or one per stage; the hidden width is C_s // r,
            so the formula is exact when r divides every C_s.
        bias: add the two FC biases, C_s/r + C_s per block.
    """
    if len(blocks_per_stage) != len(channels_per_stage):
        raise ValueError(f"expected as many block counts as channel counts, got "
                         f"{tuple(blocks_per_stage)} and {tuple(channels_per_stage)}")
    ratios = reduction if isinstance(reduction, (list, tuple)) else (reduction,) * len(
        blocks_per_stage)
    total = 0
    for blocks, channels, ratio in zip(blocks_per_stage, channels_per_stage, ratios):
        hidden = hidden_width(channels, ratio)
        per_block = 2 * channels * hidden + ((hidden + channels) if bias else 0)
        total += blocks * per_block
    return int(total)


def format_breakdown(rows, top=None):
    """A plain-text table of ``flops_breakdown`` rows (the ``top`` most expensive if given)."""
    if top is not None:
        rows = sorted(rows, key=lambda row: row.macs, reverse=True)[:top]
    total = sum(row.macs for row in rows) or 1
    width = max([len(row.name) for row in rows] + [5])
    lines = [f"{'layer':<{width}}  {'kind':<14} {'output shape':<22} {'MMACs':>10} {'share':>7}"]
    for row in rows:
        lines.append(f"{row.name:<{width}}  {row.kind:<14} {str(row.output_shape):<22} "
                     f"{row.macs / 1e6:>10.3f} {100 * row.macs / total:>6.2f}%")
    return "\n".join(lines)
