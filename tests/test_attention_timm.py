"""Optional: Effective SE, ECA, CBAM and scSE against PyTorch (skipped without torch or timm).

timm's module of the same role (``EffectiveSEModule``, ``EcaModule``,
``CbamModule``), randomly initialised in float64, gives its ``state_dict``
to ours as it is (strict load); then forward, dL/dx and every parameter's
gradient must agree to 1e-10 relative (max |ours − torch| / max |torch|).
Both compute in float64 and differ by summation order only, ~1e-16; 1e-10
leaves room for that without hiding a wrong term, which is O(1).

scSE is not in timm; the reference is segmentation_models_pytorch's
``SCSEModule`` layout written out below in PyTorch (its keys are ours).
Inputs are distinct values (no max ties, where PyTorch and we would split a
gradient differently). CBAM runs in training mode, so the gradient passes
through the batch statistics of its spatial BatchNorm; its γ and β are random.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
timm_layers = pytest.importorskip("timm.layers")
from timm.layers.activations import HardSigmoid  # noqa: E402
from timm.layers.cbam import CbamModule  # noqa: E402

import se_numpy as sn  # noqa: E402

TOLERANCE = 1e-10


def relative_error(ours, reference):
    """max |ours − reference| / max |reference| (the absolute error where reference is all 0)."""
    scale = np.abs(reference).max()
    return float(np.abs(ours - reference).max() / (scale if scale > 0 else 1.0))


def distinct_input(shape, seed):
    rng = np.random.default_rng(seed)
    return rng.permutation(np.linspace(-2, 2, int(np.prod(shape)))).reshape(shape), \
        rng.standard_normal(shape)


def compare_with_torch(reference, ours, shape, seed=0):
    """Load ``reference``'s state dict into ``ours``; errors of y, dx and every parameter grad."""
    reference = reference.double()
    with torch.no_grad():
        for name, parameter in reference.named_parameters():
            if name.endswith("bn.weight"):
                parameter.uniform_(0.5, 1.5)
            elif name.endswith("bn.bias"):
                parameter.normal_(0, 0.5)
    ours.load_state_dict({k: v.detach().numpy() for k, v in reference.state_dict().items()})
    x, dy = distinct_input(shape, seed)
    x_torch = torch.from_numpy(x).requires_grad_()
    y_torch = reference(x_torch)
    y_torch.backward(torch.from_numpy(dy))
    errors = {"y": relative_error(ours(x), y_torch.detach().numpy()),
              "dx": relative_error(ours.backward(dy), x_torch.grad.numpy())}
    torch_parameters = dict(reference.named_parameters())
    assert [name for name, _ in ours.named_parameters()] == list(torch_parameters)
    for name, parameter in ours.named_parameters():
        expected = torch_parameters[name].grad.numpy().reshape(parameter.grad.shape)
        assert np.abs(expected).max() > 0, f"{name}: zero gradient, the comparison would be empty"
        errors[name] = relative_error(parameter.grad, expected)
    return errors


def assert_all_close(errors):
    assert all(error <= TOLERANCE for error in errors.values()), errors   # NaN fails too


@pytest.mark.parametrize("channels", [8, 64])
def test_effective_se_matches_timm(channels):
    torch.manual_seed(0)
    # timm's Python hard sigmoid, relu6(x + 3) / 6: PyTorch's native Hardsigmoid (timm's
    # default where it exists) computes its backward with the float32 constant 1.0f / 6.0f,
    # 3e-8 from 1/6 even in float64; the same function and gate otherwise.
    reference = timm_layers.EffectiveSEModule(channels, gate_layer=HardSigmoid)
    with torch.no_grad():        # logits inside (-3, 3), where hard sigmoid has a slope
        reference.fc.weight.mul_(0.2)
    ours = sn.nn.EffectiveSE(channels).astype(np.float64)
    assert_all_close(compare_with_torch(reference, ours, (2, channels, 5, 4)))


@pytest.mark.parametrize("channels, kernel", [(16, 3), (256, 5), (2048, 7)])
def test_eca_matches_timm_and_its_adaptive_kernel_size(channels, kernel):
    torch.manual_seed(1)
    reference = timm_layers.EcaModule(channels)
    ours = sn.nn.ECA(channels).astype(np.float64)
    assert reference.conv.weight.shape == (1, 1, kernel) == ours.conv.weight.shape
    assert_all_close(compare_with_torch(reference, ours, (2, channels, 3, 2)))


def alive_mlp(cbam):
    """fc1 ≥ 0, so the hidden units see the max-pooled vector (> 0 here) as positive:
    the MLP's gradients are not all zero (with C/16 = 2 units both can be dead)."""
    with torch.no_grad():
        cbam.channel.fc1.weight.abs_()
    return cbam


@pytest.mark.parametrize("channels, kernel_size", [(32, 7), (16, 3)])
def test_cbam_matches_timm_in_training_mode(channels, kernel_size):
    torch.manual_seed(2)
    reference = alive_mlp(CbamModule(channels, spatial_kernel_size=kernel_size).train())
    ours = sn.nn.CBAM(channels, spatial_kernel_size=kernel_size).astype(np.float64).train()
    assert_all_close(compare_with_torch(reference, ours, (2, channels, 6, 5)))
    # the running statistics of the spatial BatchNorm moved the same way
    state = reference.state_dict()
    for key in ("spatial.conv.bn.running_mean", "spatial.conv.bn.running_var"):
        np.testing.assert_allclose(ours.state_dict()[key], state[key].numpy(), rtol=1e-12)


def test_cbam_matches_timm_in_evaluation_mode():
    torch.manual_seed(3)
    reference = alive_mlp(CbamModule(32).eval())
    ours = sn.nn.CBAM(32).astype(np.float64).eval()
    assert_all_close(compare_with_torch(reference, ours, (1, 32, 7, 7)))


class TorchSCSE(torch.nn.Module):
    """segmentation_models_pytorch's SCSEModule layout: cSE (pool, conv, ReLU, conv, sigmoid)
    and sSE (a C -> 1 conv, sigmoid), combined by addition (Roy et al. 2018, Sec. 2.3)."""

    def __init__(self, channels, reduction=16):
        super().__init__()
        nn = torch.nn
        hidden = channels // reduction
        self.cSE = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, hidden, 1), nn.ReLU(),
                                 nn.Conv2d(hidden, channels, 1), nn.Sigmoid())
        self.sSE = nn.Sequential(nn.Conv2d(channels, 1, 1), nn.Sigmoid())

    def forward(self, x):
        return x * self.cSE(x) + x * self.sSE(x)


def test_scse_matches_the_pytorch_layout():
    torch.manual_seed(4)
    reference = TorchSCSE(32, reduction=4)
    with torch.no_grad():        # hidden units away from ReLU's kink: every one active
        reference.cSE[1].bias.fill_(2.0)
    ours = sn.nn.SCSE(32, reduction=4).astype(np.float64)
    assert_all_close(compare_with_torch(reference, ours, (2, 32, 4, 3)))
