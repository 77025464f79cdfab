"""The attention variants by name: one table from which models, counting and commands build them.

    from se_numpy.nn.attention import create_attention, variant, names
    block = create_attention("cbam", channels=256, dtype=np.float64, rng=0)
    names()          # ('se', 'ese', 'eca', 'cbam', 'scse', ...)

The names are timm's (``timm.layers.create_attn``): "se" (SE, Hu et al.),
"ese" (Effective SE), "eca" (ECA), "cbam" (CBAM) and "scse" (scSE, not in timm);
"ge", "ge_theta" and "ge_theta_plus" (Gather-Excite's GE-θ⁻, GE-θ and GE-θ+) and
"sk" (Selective Kernel, which replaces a unit's 3x3 convolution: placement
"replace_3x3", ``nn/selective_kernel_blocks.py``).

What a variant is: one ``AttentionVariant`` row, registered with ``register``:

    name        the key ("cbam"); ``sn.models.create(..., attention=name)`` takes it
    build       ``build(channels, dtype=..., rng=..., **options)`` -> a Module over
                ``channels`` channels. ``options`` are only the SE options the row
                names in ``options`` (below), with the values the model was given.
    placements  where it may go in a residual unit: a subset of
                ``nn.residual.PLACEMENTS`` ("standard", "pre", "post", "identity",
                "after_3x3"). A shape-preserving block (y has x's shape) fits all
                five. A variant that replaces a layer instead (Selective Kernel
                replaces the unit's 3x3 convolution) names its own placement and
                the residual block that knows it.
    options     the SE options (``models.se_config.SE_OPTION_NAMES``) it reads, e.g.
                ("reduction",). A model refuses an option a variant does not read,
                so ``attention="eca", reduction=8`` is an error, not silently ignored.
    paper       where it comes from, for tables and ``describe``.

What the built module must offer: ``forward(x)`` and ``backward(dy)`` (returns
dL/dx, adds into every parameter's ``grad``), ``output_shape(input_shape)``,
and ``flops(input_shape)``, its multiply-accumulates under the paper's
convention (``analysis/counting.py``): counting treats it as one unit, takes
its parameters from ``parameters()`` and its cost from ``flops``. A block that
also has ``forward_add(x, shortcut)``/``backward_add`` (SE) gets the scale
fused with the residual addition in placement "standard"; others are run as
``attention(x) + shortcut``. A ``forward_add`` ends with
``self.run_forward_hooks((x, shortcut), out)``, since no ``__call__`` runs the
hooks there: observers (``analysis.record_gates``) see every call.

Adding a variant is one ``register(AttentionVariant(...))`` call in this file.
"""
from typing import Callable, NamedTuple, Tuple

from .cbam import CBAM
from .eca import ECA
from .effective_se import EffectiveSE
from .gather_excite import GatherExcite
from .residual import PLACEMENTS
from .scse import SCSE
from .se import SEBlock
from .selective_kernel import SelectiveKernel


class AttentionVariant(NamedTuple):
    """One attention variant: see the module docstring for each field."""
    name: str
    build: Callable
    placements: Tuple[str, ...]
    options: Tuple[str, ...]
    paper: str


_VARIANTS = {}


def register(entry):
    """Add a row to the table; a name registered twice is an error."""
    if entry.name in _VARIANTS:
        raise ValueError(f"attention variant {entry.name!r} is registered twice")
    unknown = set(entry.placements) - set(PLACEMENTS) - {"replace_3x3"}
    if unknown:
        raise ValueError(f"{entry.name}: unknown placements {sorted(unknown)}")
    _VARIANTS[entry.name] = entry
    return entry


def names():
    """Every registered variant name, in registration order."""
    return tuple(_VARIANTS)


def variant(name):
    """The ``AttentionVariant`` of ``name``, with an error listing the choices."""
    if name not in _VARIANTS:
        raise ValueError(f"attention: expected one of {', '.join(_VARIANTS)}, got {name!r}")
    return _VARIANTS[name]


def create_attention(name, channels, dtype=None, rng=None, **options):
    """Build variant ``name`` over ``channels`` channels with the options it reads."""
    entry = variant(name)
    unread = sorted(set(options) - set(entry.options))
    if unread:
        raise TypeError(f"attention {name!r} does not take the options {unread} "
                        f"(it reads {list(entry.options) or 'none'})")
    extra = {} if dtype is None else {"dtype": dtype}
    return entry.build(channels, rng=rng, **extra, **options)


# ------------------------------------------------------------------ the builders
def _se(channels, reduction=16, squeeze="avg", gate="sigmoid", se_bias=True, divisor=None,
        **common):
    return SEBlock(channels, reduction=reduction, squeeze=squeeze, gate=gate, bias=se_bias,
                   divisor=divisor, **common)


def _ese(channels, gate="hard_sigmoid", **common):
    return EffectiveSE(channels, gate=gate, **common)


def _eca(channels, **common):
    return ECA(channels, **common)


def _cbam(channels, reduction=16, **common):
    return CBAM(channels, rd_ratio=1.0 / reduction, **common)


def _scse(channels, reduction=16, **common):
    return SCSE(channels, reduction=reduction, **common)


def _ge(channels, **common):
    """GE-θ⁻ with the global extent: x · σ(mean_ij x), no parameters (the paper's best GE-θ⁻)."""
    return GatherExcite(channels, extent=0, use_mlp=False, **common)


def _ge_theta(channels, **common):
    """GE-θ, extent 8: three stride-2 depthwise convolutions (global at ResNet-50's 7x7 stage)."""
    return GatherExcite(channels, extent=8, extra_params=True, use_mlp=False, **common)


def _ge_theta_plus(channels, reduction=16, **common):
    """GE-θ+: GE-θ's gather (extent 8) and SE's MLP C -> C/r -> C in the excite."""
    return GatherExcite(channels, extent=8, extra_params=True, rd_ratio=1.0 / reduction,
                        **common)


def _sk(channels, reduction=16, **common):
    """The SK layer over ``channels`` (in = out, stride 1): what a unit's 3x3 becomes."""
    return SelectiveKernel(channels, channels, rd_ratio=1.0 / reduction, **common)


register(AttentionVariant("se", _se, PLACEMENTS, ("reduction", "squeeze", "gate", "se_bias",
                                                  "divisor"),
                          "Hu et al., Squeeze-and-Excitation Networks, CVPR 2018"))
register(AttentionVariant("ese", _ese, PLACEMENTS, ("gate",),
                          "Lee & Park, CenterMask (effective SE), CVPR 2020"))
register(AttentionVariant("eca", _eca, PLACEMENTS, (),
                          "Wang et al., ECA-Net, CVPR 2020"))
register(AttentionVariant("cbam", _cbam, PLACEMENTS, ("reduction",),
                          "Woo et al., CBAM, ECCV 2018"))
register(AttentionVariant("scse", _scse, PLACEMENTS, ("reduction",),
                          "Roy et al., concurrent spatial and channel SE, MICCAI 2018"))
register(AttentionVariant("ge", _ge, PLACEMENTS, (),
                          "Hu et al., Gather-Excite (GE-θ⁻, global extent), NeurIPS 2018"))
register(AttentionVariant("ge_theta", _ge_theta, PLACEMENTS, (),
                          "Hu et al., Gather-Excite (GE-θ, extent 8), NeurIPS 2018"))
register(AttentionVariant("ge_theta_plus", _ge_theta_plus, PLACEMENTS, ("reduction",),
                          "Hu et al., Gather-Excite (GE-θ+, extent 8), NeurIPS 2018"))
register(AttentionVariant("sk", _sk, ("replace_3x3",), ("reduction",),
                          "Li et al., Selective Kernel Networks, CVPR 2019"))
