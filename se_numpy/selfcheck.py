"""``se-numpy gradcheck``: every differentiable operation of the library against finite differences.

Each case builds float64 inputs from a seeded generator, kept away from kinks by
construction (distinct values for max operations, pre-activations away from 0),
runs ``check_vjp`` or ``check_module`` element-wise, and becomes one row of the
table: operation, shape, max relative error, pass/fail. The command exits
non-zero if any row fails, so it doubles as a smoke test of an installation.
"""
import sys
import time

import numpy as np

from . import functional as F
from . import nn
from .gradcheck import check_module, check_vjp


def distinct(rng, shape, low=-1.0, high=1.0):
    """Values spread over [low, high] with no two equal (no max ties), in random order."""
    count = int(np.prod(shape))
    grid = np.linspace(low, high, count) + rng.uniform(-0.1, 0.1, count) * (high - low) / max(count, 1)
    return rng.permutation(grid).reshape(shape)


# ---------------------------------------------------------------------------- cases
def _se_parameters(rng, channels, hidden, bias=True):
    w1, w2 = rng.normal(0, 0.7, (hidden, channels)), rng.normal(0, 0.7, (channels, hidden))
    b1 = rng.uniform(0.1, 0.5, hidden) if bias else None
    b2 = rng.normal(0, 0.3, channels) if bias else None
    return w1, b1, w2, b2


def _functional_cases(rng):
    x = distinct(rng, (2, 4, 3, 5))

    def squeeze(mode):
        return lambda: check_vjp(lambda x: F.squeeze_forward(x, mode)[0],
                                 lambda dz, x: F.squeeze_backward(dz, F.squeeze_forward(x, mode)[1]),
                                 (x,), names=("x",), elementwise=True)

    yield "squeeze (avg)", x.shape, squeeze("avg")
    yield "squeeze (max)", x.shape, squeeze("max")

    s = rng.uniform(0.2, 0.9, (2, 4))
    yield "scale", (x.shape, s.shape), lambda: check_vjp(
        lambda x, s: F.scale_forward(x, s)[0],
        lambda dy, x, s: F.scale_backward(dy, F.scale_forward(x, s)[1]),
        (x, s), names=("x", "s"), elementwise=True)

    z = rng.normal(size=(3, 6))
    params = _se_parameters(rng, 6, 3)
    for gate in ("sigmoid", "tanh", "relu", "hard_sigmoid"):
        def excitation(gate=gate):
            def forward(z, w1, b1, w2, b2):
                return F.excitation_forward(z, w1, b1, w2, b2, gate)[0]

            def backward(ds, z, w1, b1, w2, b2):
                return F.excitation_backward(ds, F.excitation_forward(z, w1, b1, w2, b2, gate)[1])
            return check_vjp(forward, backward, (z, *params),
                             names=("z", "w1", "b1", "w2", "b2"), elementwise=True)
        yield f"excitation ({gate} gate)", z.shape, excitation

    w = rng.normal(size=(5, 6))
    b = rng.normal(size=5)
    yield "linear", (z.shape, w.shape), lambda: check_vjp(
        lambda z, w, b: F.linear_forward(z, w, b)[0],
        lambda dy, z, w, b: F.linear_backward(dy, F.linear_forward(z, w, b)[1]),
        (z, w, b), names=("x", "weight", "bias"), elementwise=True)

    for name in ("relu", "sigmoid", "tanh", "hard_sigmoid"):
        forward, backward = F.activation.get_activation(name)
        values = distinct(rng, (4, 5), 0.05, 2.5) * rng.choice([-1.0, 1.0], (4, 5))  # |v| >= 0.05
        yield name, values.shape, lambda forward=forward, backward=backward, values=values: check_vjp(
            lambda v: forward(v)[0], lambda dv, v: backward(dv, forward(v)[1]),
            (values,), names=("x",), elementwise=True)


def _module_cases(rng):
    x = distinct(rng, (2, 8, 3, 3))
    for squeeze, gate in (("avg", "sigmoid"), ("max", "sigmoid"), ("avg", "tanh")):
        def se_block(squeeze=squeeze, gate=gate):
            block = nn.SEBlock(8, reduction=4, squeeze=squeeze, gate=gate, rng=1).astype(np.float64)
            return check_module(block, x, elementwise=True)
        yield f"SEBlock ({squeeze} squeeze, {gate})", x.shape, se_block

    shortcut = rng.normal(size=x.shape)

    def se_axpy():
        block = nn.SEBlock(8, reduction=4, rng=2).astype(np.float64)

        def forward(x, sc, *weights):
            _load(block, weights)
            return block.forward_add(x, sc)

        def backward(dout, x, sc, *weights):
            _load(block, weights)
            block.zero_grad()
            block.forward_add(x, sc)
            dx, dsc = block.backward_add(dout)
            return (dx, dsc) + tuple(p.grad for p in block.parameters())
        return check_vjp(forward, backward, (x, shortcut, *[p.data for p in block.parameters()]),
                         names=("x", "shortcut") + tuple(n for n, _ in block.named_parameters()),
                         elementwise=True)
    yield "SEBlock fused add (Axpy)", x.shape, se_axpy

    yield "NoSqueezeBlock (1x1 convs, Table 16)", x.shape, lambda: check_module(
        nn.NoSqueezeBlock(8, reduction=4, rng=16).astype(np.float64), x, elementwise=True)

    features = rng.normal(size=(3, 6))
    yield "Linear", features.shape, lambda: check_module(
        nn.Linear(6, 4, rng=3).astype(np.float64), features, elementwise=True)


def _layer_cases(rng):
    x = distinct(rng, (2, 4, 6, 6))
    layers = [
        ("Conv2d (stride 2, pad 1, groups 2)", lambda: nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2, rng=4)),
        ("Conv2d (dilation 2, no bias)", lambda: nn.Conv2d(4, 3, 3, padding=2, dilation=2, bias=False, rng=5)),
        ("BatchNorm2d (train)", lambda: nn.BatchNorm2d(4)),
        ("BatchNorm2d (eval)", lambda: nn.BatchNorm2d(4).eval()),
        ("MaxPool2d (3, stride 2, pad 1)", lambda: nn.MaxPool2d(3, stride=2, padding=1)),
        ("AvgPool2d (3, stride 1, pad 1)", lambda: nn.AvgPool2d(3, stride=1, padding=1)),
        ("GlobalAvgPool", nn.GlobalAvgPool),
        ("MaxPool2d (3, stride 2, ceil mode)", lambda: nn.MaxPool2d(3, stride=2, ceil_mode=True)),
        ("AvgPool2d (3, stride 2, pad 1, ceil, pad not counted)",
         lambda: nn.AvgPool2d(3, 2, padding=1, ceil_mode=True, count_include_pad=False)),
        ("SiLU", nn.SiLU),
    ]
    for name, build in layers:
        yield name, x.shape, lambda build=build: check_module(build().astype(np.float64), x,
                                                              elementwise=True)

    logits = rng.normal(size=(4, 5))
    labels = np.array([0, 3, 1, 4])
    for smoothing in (0.0, 0.1):
        def cross_entropy(smoothing=smoothing):
            return check_vjp(
                lambda logits: np.asarray(F.softmax_cross_entropy_forward(logits, labels, smoothing)[0]),
                lambda dloss, logits: F.softmax_cross_entropy_backward(
                    float(dloss), F.softmax_cross_entropy_forward(logits, labels, smoothing)[1]),
                (logits,), names=("logits",), elementwise=True)
        yield f"softmax cross-entropy (smoothing {smoothing})", logits.shape, cross_entropy


def _block_cases(rng):
    from .nn.inception import InceptionModule
    from .nn.residual import PLACEMENTS, BasicBlock, Bottleneck, projection_shortcut
    from .nn.vgg import VGGStage
    from .models import create

    x = rng.normal(size=(2, 8, 4, 4))
    for placement in PLACEMENTS:
        def basic(placement=placement):
            block = BasicBlock(8, 8, attention=nn.SEBlock(8, reduction=4, rng=6),
                               placement=placement, rng=7)
            return check_module(block.astype(np.float64), x, elementwise=True, max_entries=60)
        yield f"BasicBlock + SE ({placement})", x.shape, basic

    def bottleneck():
        block = Bottleneck(8, 4, stride=2, groups=2, base_width=32, stride_in_1x1=True,
                           downsample=projection_shortcut(8, 16, 2, rng=8),
                           attention=nn.SEBlock(16, reduction=4, rng=9), rng=10)
        return check_module(block.astype(np.float64), x, elementwise=True, max_entries=60)
    yield "Bottleneck (ResNeXt, stride 2) + SE", x.shape, bottleneck

    def inception():
        block = InceptionModule(8, 2, 2, 3, 2, 2, 2, attention=nn.SEBlock(9, reduction=3, rng=11),
                                rng=12)
        return check_module(block.astype(np.float64), x, elementwise=True, max_entries=60)
    yield "Inception module + SE", x.shape, inception

    def vgg():
        block = VGGStage(8, 6, 2, attention=nn.SEBlock(6, reduction=2, rng=13), rng=14)
        return check_module(block.astype(np.float64), x, elementwise=True, max_entries=60)
    yield "VGG stage + SE", x.shape, vgg

    # kinked activations on inputs kept 0.05 away from their kinks (0 and 6; -3 and 3)
    spread = distinct(rng, (2, 4, 3, 3), -2.0, 8.0)
    kink_free = np.where(np.min(np.abs(spread[..., None] - np.array([-3.0, 0.0, 3.0, 6.0])),
                                axis=-1) < 0.05, spread + 0.1, spread)
    for name, build in (("ReLU6", nn.ReLU6), ("HardSwish", nn.HardSwish)):
        yield name, kink_free.shape, lambda build=build: check_module(
            build().astype(np.float64), kink_free, elementwise=True)

    def inverted_residual():
        from .nn.mbconv import inverted_residual as build
        se = nn.SEBlock(16, hidden=2, activation="silu", rng=16)
        block = build(8, 16, 8, kernel=3, act="silu", se=se, rng=17)
        return check_module(block.astype(np.float64), x, elementwise=True, max_entries=60)
    yield "InvertedResidual (MBConv) + SE (SiLU)", x.shape, inverted_residual

    images = rng.normal(size=(2, 3, 8, 8))
    yield "se_tiny_resnet (whole model)", images.shape, lambda: check_module(
        create("se_tiny_resnet", num_classes=4, seed=15).astype(np.float64), images,
        elementwise=True, max_entries=8)


def _attention_cases(rng):
    """Effective SE, ECA, CBAM (each half, and whole) and scSE, alone and in a residual unit."""
    from .nn.cbam import ChannelAttention, SpatialAttention
    from .nn.residual import BasicBlock

    x = distinct(rng, (2, 8, 4, 4))
    modules = [
        ("EffectiveSE (hard sigmoid)", lambda: nn.EffectiveSE(8, rng=18)),
        ("ECA (k = 3)", lambda: nn.ECA(8, rng=19)),
        ("CBAM channel attention (avg + max, shared MLP)",
         lambda: ChannelAttention(8, 4, rng=20)),
        ("CBAM spatial attention (channel mean/max, 7x7 conv, BN)",
         lambda: SpatialAttention(7, rng=21)),
        ("CBAM (channel, then spatial)", lambda: nn.CBAM(8, rd_ratio=0.5, rng=22)),
        ("SCSE (cSE + sSE, C -> 1)", lambda: nn.SCSE(8, reduction=2, rng=23)),
    ]
    for name, build in modules:
        yield name, x.shape, lambda build=build: check_module(build().astype(np.float64), x,
                                                              elementwise=True)
    block_input = rng.normal(size=(2, 8, 4, 4))
    for name, placement in (("cbam", "standard"), ("eca", "identity")):
        def block(name=name, placement=placement):
            attention = nn.attention.create_attention(name, 8, rng=24)
            unit = BasicBlock(8, 8, attention=attention, placement=placement, rng=25)
            return check_module(unit.astype(np.float64), block_input, elementwise=True,
                                max_entries=60)
        yield f"BasicBlock + {name} ({placement})", block_input.shape, block


def _relu_safe_shift(values):
    """Per channel of an (N, C, H, W) map, the shift that puts 0 mid-way in the widest gap
    between its values: afterwards no value lies near a ReLU's kink, and both sides occur."""
    columns = np.sort(values.transpose(1, 0, 2, 3).reshape(values.shape[1], -1), axis=1)
    gaps = np.diff(columns, axis=1)
    widest = np.argmax(gaps, axis=1)
    rows = np.arange(len(columns))
    return -(columns[rows, widest] + columns[rows, widest + 1]) / 2


def _attention_beyond_se_cases(rng):
    from .nn.gather_excite import GatherExcite
    from .nn.selective_kernel import SelectiveKernel

    x = distinct(rng, (2, 4, 5, 6))

    def gather_excite(extent, extra_params, use_mlp):
        block = GatherExcite(4, extent=extent, extra_params=extra_params, use_mlp=use_mlp,
                             rd_channels=2, rng=18).astype(np.float64)
        if extra_params and "act1" in block.gather._order:
            pre = block.gather.norm1(block.gather.conv1(x))
            block.gather.norm1.bias.data = block.gather.norm1.bias.data + _relu_safe_shift(pre)
        if use_mlp:
            fc1 = block.mlp.fc1
            fc1.bias.data = _relu_safe_shift(F.conv2d_forward(block.gather(x), fc1.weight.data)[0])
        return check_module(block, x, mode="train", elementwise=True, max_entries=60)

    for label, options in (("GE-θ⁻, extent 2", (2, False, False)),
                           ("extent 0 with MLP (= SE)", (0, False, True)),
                           ("GE-θ+, extent 4", (4, True, True))):
        yield f"GatherExcite ({label})", x.shape, lambda options=options: gather_excite(*options)

    def selective_kernel():
        block = SelectiveKernel(4, 4, rd_channels=2, rng=19).astype(np.float64).train()
        for path, part in zip(block.paths, block._path_inputs(x)):
            path.bn.bias.data = path.bn.bias.data + _relu_safe_shift(
                path.bn(path.conv(np.ascontiguousarray(part))))
        paths = [path(np.ascontiguousarray(part))
                 for path, part in zip(block.paths, block._path_inputs(x))]
        z = F.path_squeeze_forward(paths)[0][:, :, None, None]
        block.attn.bn.bias.data = block.attn.bn.bias.data + _relu_safe_shift(
            block.attn.bn(block.attn.fc_reduce(z)))
        return check_module(block, x, mode="train", elementwise=True, max_entries=60)
    yield "SelectiveKernel (3x3 + dilated 3x3)", x.shape, selective_kernel


def _load(module, arrays):
    for parameter, value in zip(module.parameters(), arrays):
        parameter.data = value


CASE_GROUPS = [_functional_cases, _module_cases, _layer_cases, _block_cases, _attention_cases,
               _attention_beyond_se_cases]


def run_checks(seed=0, only=None):
    """Run every case (or those whose name contains one of the strings in ``only``).

    Returns a list of row dicts (operation, shape, max_rel_error, passed, report, seconds).
    """
    patterns = [p.strip().lower() for p in only] if only else None
    rows = []
    for group in CASE_GROUPS:
        for name, shape, run in group(np.random.default_rng(seed)):
            if patterns and not any(p in name.lower() for p in patterns):
                continue
            start = time.perf_counter()
            report = run()
            rows.append({"operation": name, "shape": shape, "passed": bool(report.passed),
                         "max_rel_error": max_relative_error(report), "report": report,
                         "seconds": time.perf_counter() - start})
    return rows


def max_relative_error(report):
    """Largest error relative to the size of its tensor's gradient, over the report's tensors.

    Per tensor: max |analytical - numerical| / max |numerical| over the entries
    compared (kinks excluded). Dividing by each entry's own size instead would
    blow up on entries whose true gradient is ~0 and say nothing; tensors whose
    whole gradient is below the checker's tolerance (zero in truth) are judged
    by pass/fail alone.
    """
    worst = 0.0
    for tensor in report.tensors.values():
        smooth = ~tensor.kink
        if tensor.indices.size == 0 or not np.any(smooth):
            continue
        scale = np.abs(tensor.numerical[smooth]).max()
        if scale <= tensor.tolerance[smooth].max():
            continue     # a gradient that is zero in truth (e.g. a conv bias before BatchNorm)
        worst = max(worst, tensor.error[smooth].max() / scale)
    return float(worst)


def format_table(rows):
    width = max(len(r["operation"]) for r in rows) + 2
    lines = [f"{'operation':<{width}}{'shape':<28}{'max rel error':>14}  result",
             "-" * (width + 28 + 14 + 8)]
    for row in rows:
        shape = str(row["shape"]).replace(" ", "")
        lines.append(f"{row['operation']:<{width}}{shape:<28}{row['max_rel_error']:>14.2e}  "
                     f"{'pass' if row['passed'] else 'FAIL'}")
    failed = sum(not r["passed"] for r in rows)
    lines.append(f"{len(rows) - failed} passed, {failed} failed")
    return "\n".join(lines)


def _command(args):
    from .kernels.backend import use_backend
    with use_backend(args.backend):
        rows = run_checks(seed=args.seed, only=args.only.split(",") if args.only else None)
    if not rows:
        names = [name for group in CASE_GROUPS
                 for name, _, _ in group(np.random.default_rng(args.seed))]
        print(f"se-numpy gradcheck: error: no operation matches --only {args.only!r}; "
              f"valid names: {', '.join(names)}", file=sys.stderr)
        return 2
    print(format_table(rows))
    for row in rows:
        if not row["passed"] or args.verbose:
            print(f"\n{row['operation']}:\n{row['report']}")
    return 0 if all(r["passed"] for r in rows) else 1


def add_commands(subparsers):
    parser = subparsers.add_parser(
        "gradcheck", help="check every differentiable operation against finite differences",
        description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    parser.add_argument("--backend", default="numpy", choices=("numpy", "numba", "cuda"),
                        help="kernel backend the operations run on (default numpy)")
    parser.add_argument("--only", metavar="NAMES",
                        help="comma-separated parts of operation names to check (default: all)")
    parser.add_argument("--verbose", action="store_true", help="print every report in full")
    parser.set_defaults(func=_command)
