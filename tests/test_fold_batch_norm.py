"""fold_batch_norm: the folded model's evaluation forward (and backward) against the unfolded one.

Folding changes only the order of roundings: BN(W * x) = a·(W * x) + b becomes
(a·W) * x + b, with a and b computed in float64 and rounded once. In float64 the
outputs agree to ~1e-15 relative; the bound 1e-10 is far above that and far
below what a wrong fold gives (a missing shift or scale, a BN folded into the
wrong convolution: O(0.1) of the output).
"""
import numpy as np
import pytest

import se_numpy as sn
from se_numpy.nn import BatchNorm2d, Bottleneck, Conv2d, FoldedBatchNorm, ReLU, Sequential
from se_numpy.nn.fold import fold_batch_norm, folded_batch_norms
from se_numpy.nn.residual import projection_shortcut

TOLERANCE = 1e-10


@pytest.fixture(params=["numpy", "numba"])
def each_backend(request):
    with sn.use_backend(request.param):
        yield request.param


def randomise_statistics(model, seed=0):
    """Running statistics, γ and β far from their initial 0/1 (else a fold that drops the
    shift or the scale would still agree)."""
    rng = np.random.default_rng(seed)
    for module in model.modules():
        if isinstance(module, BatchNorm2d):
            c = module.num_features
            module.running_mean[...] = rng.normal(0, 0.5, c)
            module.running_var[...] = rng.uniform(0.3, 3.0, c)
            module.weight.data[...] = rng.uniform(0.5, 1.5, c) * rng.choice([-1, 1], c)
            module.bias.data[...] = rng.normal(0, 0.5, c)
    return model.eval()


def bottleneck_network():
    """Conv → BN → ReLU in a Sequential (Conv2d with a bias) then a bottleneck unit with a
    projection shortcut and SE: conv1-3/bn1-3 and downsample.0/1."""
    rng = np.random.default_rng(1)
    se = sn.nn.SEBlock(16, reduction=4, dtype=np.float64, rng=rng)
    return Sequential(Conv2d(3, 8, 3, padding=1, dtype=np.float64, rng=rng),
                      BatchNorm2d(8, dtype=np.float64), ReLU(),
                      Bottleneck(8, 4, stride=2, attention=se, dtype=np.float64, rng=rng,
                                 downsample=projection_shortcut(8, 16, 2, np.float64, rng)))


def test_folded_forward_and_backward_agree_with_the_unfolded_model(each_backend):
    model = randomise_statistics(bottleneck_network())
    x = np.random.default_rng(2).normal(size=(2, 3, 9, 9))
    expected = model(x)
    folded = fold_batch_norm(model)
    assert len(folded_batch_norms(folded)) == 5        # every BN of the model
    assert not any(isinstance(m, BatchNorm2d) for m in folded.modules())
    out = folded(x)
    np.testing.assert_allclose(out, expected, rtol=TOLERANCE, atol=TOLERANCE)
    # evaluation-mode backward (gradient checks): the same dx through both
    dout = np.random.default_rng(3).normal(size=out.shape)
    np.testing.assert_allclose(folded.backward(dout), model.backward(dout),
                               rtol=TOLERANCE, atol=TOLERANCE)


def test_the_original_is_unchanged_and_a_folded_model_refuses_training():
    model = randomise_statistics(bottleneck_network())
    weights = {name: p.data.copy() for name, p in model.named_parameters()}
    folded = fold_batch_norm(model)
    for name, parameter in model.named_parameters():
        np.testing.assert_array_equal(parameter.data, weights[name])
    assert isinstance(folded[1], FoldedBatchNorm) and isinstance(folded[2], ReLU)   # order kept
    folded.train()
    with pytest.raises(RuntimeError, match="evaluation only"):
        folded(np.zeros((1, 3, 9, 9)))


def test_the_fold_is_the_affine_map_per_channel():
    """W'[o] = a[o]·W[o] and c'[o] = a[o]·c[o] + b[o], a = γ/sqrt(σ² + eps), b = β − μ·a."""
    conv = Conv2d(2, 3, 1, dtype=np.float64, rng=0)
    norm = BatchNorm2d(3, eps=0.25, dtype=np.float64)
    norm.running_mean[...] = [1.0, -2.0, 0.5]
    norm.running_var[...] = [0.75, 3.75, 0.0]           # sqrt(σ² + eps) = 1, 2, 0.5
    norm.weight.data[...] = [2.0, 1.0, -1.0]
    norm.bias.data[...] = [0.0, 1.0, 3.0]
    folded = fold_batch_norm(Sequential(conv, norm).eval())[0]
    a = np.array([2.0, 0.5, -2.0])
    np.testing.assert_allclose(folded.weight.data, a[:, None, None, None] * conv.weight.data)
    np.testing.assert_allclose(folded.bias.data,
                               a * conv.bias.data + np.array([0.0, 1.0, 3.0]) - a * [1, -2, 0.5])


def test_a_whole_zoo_model_folds_and_agrees():
    """SE-ResNet-20 in float32: every BN folded; the logits agree to float32's rounding
    (relative 1e-5: ~20 layers of ~1e-7 each, against O(1) for a wrong fold)."""
    model = randomise_statistics(sn.models.create("se_resnet20", num_classes=10, seed=0))
    x = np.random.default_rng(4).normal(size=(2, 3, 8, 8)).astype(np.float32)
    expected = model(x)
    folded = fold_batch_norm(model)
    assert len(folded_batch_norms(folded)) == sum(isinstance(m, BatchNorm2d)
                                                  for m in model.modules())
    out = folded(x)
    assert np.abs(out - expected).max() <= 1e-5 * np.abs(expected).max()


def test_fold_rejects_what_it_cannot_fold():
    with pytest.raises(TypeError, match="expected a Module"):
        fold_batch_norm(np.zeros(3))
    model = Sequential(Conv2d(2, 3, 1, rng=0), BatchNorm2d(3, track_running_stats=False))
    with pytest.raises(ValueError, match="running statistics"):
        fold_batch_norm(model)
