"""The SE options every model accepts, gathered in one place (paper Secs. 6.1-6.4).

    reduction   r, the reduction ratio: one int for every stage, or a tuple with
                one ratio per stage (Table 10 varies r for the whole net; a
                per-stage r lets you spend fewer parameters on the wide late stages)
    placement   where SE sits in a residual unit: "standard", "pre", "post",
                "identity" (Fig. 5, Table 14) or "after_3x3" (Table 15); "replace_3x3"
                for Selective Kernel, which takes the 3x3 convolution's place
    se_bias     whether the two FC layers of the excitation have biases
                (timm's SEModule: yes; the paper's ablations: no)
    squeeze     "avg" (Eq. 2), "max" (Table 11) or "none": NoSqueeze, the excitation
                as 1x1 convolutions on the full map (Table 16, nn/nosqueeze.py)
    gate        "sigmoid" (Eq. 3), "tanh", "relu" (Table 12) or "hard_sigmoid"
    stages      which stages get SE blocks: None (all) or 0-based stage indices,
                e.g. (2,) for the third stage only (Table 13)
    attention   which attention block: "se" (the default), or another name of
                ``nn/attention.py`` ("ese", "eca", "cbam", "scse", ...), in the same
                places (``placement``, ``stages``); None builds the model without any.
                A variant takes only the options it reads (``AttentionVariant.options``):
                ``attention="eca", reduction=8`` is refused, since ECA has no reduction.
                The ResNets (CIFAR and ImageNet) take it: ``create("resnet50", attention="cbam")``.
"""
import numpy as np

from ..nn.attention import create_attention, variant
from ..nn.residual import check_placement
from ..nn.selective_kernel_blocks import REPLACE_3X3
from ..nn.nosqueeze import NoSqueezeBlock
from ..nn.se import SEBlock

SE_OPTION_NAMES = ("reduction", "placement", "se_bias", "squeeze", "gate", "stages")


class SEConfig:
    """How to build the SE block of each stage of a network.

    Args: see the module docstring. ``num_stages`` is the number of stages of
    the network, so a per-stage ``reduction`` tuple can be checked at once.
    """

    def __init__(self, num_stages, reduction=16, placement="standard", se_bias=True,
                 squeeze="avg", gate="sigmoid", stages=None, divisor=None, attention="se",
                 attention_options=None):
        self.num_stages = int(num_stages)
        if isinstance(reduction, (list, tuple)):
            if len(reduction) != self.num_stages:
                raise ValueError(f"reduction: expected one ratio per stage ({self.num_stages} "
                                 f"values), got {len(reduction)}: {tuple(reduction)}")
            ratios = tuple(reduction)
        else:
            ratios = (reduction,) * self.num_stages
        for ratio in ratios:
            if isinstance(ratio, bool) or not isinstance(ratio, (int, float, np.integer,
                                                                 np.floating)) or ratio <= 0:
                raise ValueError(f"reduction: expected positive numbers, got {reduction!r}")
        self.reductions = ratios
        # "replace_3x3" (Selective Kernel) is checked against the variant below
        self.placement = placement if (placement == REPLACE_3X3 and attention != "se") \
            else check_placement(placement)
        self.se_bias, self.squeeze, self.gate = bool(se_bias), squeeze, gate
        self.stages = _check_stages(stages, self.num_stages)
        self.divisor = divisor      # None: C // r (the paper); 8: make_divisible(C / r, 8) (timm)
        # another variant than SE: the option names it was explicitly given (its own
        # defaults stand for the rest, e.g. Effective SE's hard-sigmoid gate)
        self.attention = attention
        self.attention_options = tuple(attention_options or ())
        if attention != "se":
            entry = variant(attention)
            unread = sorted(set(self.attention_options) - set(entry.options))
            if unread:
                raise TypeError(f"attention {attention!r} does not take the options {unread} "
                                f"(it reads {list(entry.options) or 'none'})")
            if self.placement not in entry.placements:
                raise ValueError(f"placement: attention {attention!r} fits {entry.placements}, "
                                 f"got {self.placement!r}")

    def make(self, channels, stage_index, dtype=np.float32, rng=None):
        """The SE block over ``channels`` channels for stage ``stage_index`` (0-based),
        or None where ``stages`` leaves that stage without SE."""
        if stage_index not in self.stages:
            return None
        if self.attention != "se":
            values = {"reduction": self.reductions[stage_index], "gate": self.gate,
                      "squeeze": self.squeeze, "se_bias": self.se_bias}
            return create_attention(self.attention, channels, dtype=dtype, rng=rng,
                                    **{name: values[name] for name in self.attention_options})
        if self.squeeze == "none":
            return NoSqueezeBlock(channels, reduction=self.reductions[stage_index],
                                  gate=self.gate, bias=self.se_bias, dtype=dtype, rng=rng)
        return SEBlock(channels, reduction=self.reductions[stage_index], squeeze=self.squeeze,
                       gate=self.gate, bias=self.se_bias, dtype=dtype, rng=rng,
                       divisor=self.divisor)


def _check_stages(stages, num_stages):
    """``stages`` as a sorted tuple of distinct 0-based indices below ``num_stages``."""
    if stages is None:
        return tuple(range(num_stages))
    if not isinstance(stages, (list, tuple)) or not stages or not all(
            isinstance(index, (int, np.integer)) and not isinstance(index, bool)
            for index in stages):
        raise ValueError(f"stages: expected a non-empty tuple of stage indices, got {stages!r}")
    if len(set(stages)) != len(stages) or not all(0 <= index < num_stages for index in stages):
        raise ValueError(f"stages: expected distinct indices in 0..{num_stages - 1}, "
                         f"got {tuple(stages)}")
    return tuple(sorted(int(index) for index in stages))


def split_se_options(model_name, with_se, options):
    """Separate SE options from the rest; refuse SE options on a model without SE.

    Returns (SE options dict, remaining options dict). Silently ignoring, say,
    ``reduction=8`` on ``resnet50`` would hide a typo in the model name.
    """
    se_options = {key: options.pop(key) for key in SE_OPTION_NAMES if key in options}
    if se_options and not with_se:
        raise TypeError(f"{model_name} has no SE blocks, so the options "
                        f"{sorted(se_options)} do not apply (use se_{model_name})")
    return se_options, options


def attention_config(model_name, num_stages, with_se, options, divisor=None,
                     default_attention=None):
    """(``SEConfig`` or None, remaining options) for a model that takes ``attention=``.

    ``attention`` defaults to "se" on an SE model and to None (no attention) on a
    plain one, so ``create("resnet50", attention="cbam")`` and
    ``create("se_resnet50", attention=None)`` both work. ``divisor`` (timm's SE
    width rounding) applies to SE only. ``default_attention`` is the variant a
    model is named after (timm's ``ecaresnet50d``: "eca").
    """
    default_attention = default_attention or ("se" if with_se else None)
    attention = options.pop("attention", default_attention)
    with_se = with_se or default_attention is not None
    se_options, rest = split_se_options(model_name, with_se or attention is not None, options)
    if attention is None:
        if se_options:
            raise TypeError(f"{model_name} with attention=None has no attention blocks, so the "
                            f"options {sorted(se_options)} do not apply")
        return None, rest
    if not isinstance(attention, str):
        raise TypeError(f"attention: expected a variant name (str) or None, "
                        f"got {type(attention).__name__}")
    if attention == "se":
        return SEConfig(num_stages, divisor=divisor, **se_options), rest
    given = tuple(name for name in se_options if name not in ("placement", "stages"))
    if "placement" not in se_options and variant(attention).placements == (REPLACE_3X3,):
        se_options["placement"] = REPLACE_3X3      # SK has no other place to go
    return SEConfig(num_stages, attention=attention, attention_options=given, **se_options), rest
