"""data_gradient_skipped: the convolutions that read the images skip dx, and nothing else changes."""
import numpy as np
import pytest

import se_numpy as sn
from se_numpy.data import SyntheticConfig, make_synthetic
from se_numpy.train import Trainer, TrainConfig


def _model():
    return sn.models.create("se_tiny_resnet", num_classes=3, seed=0, reduction=2,
                            dtype=np.float64)


def _batch():
    rng = np.random.default_rng(1)
    return rng.standard_normal((2, 3, 8, 8)), np.array([0, 2])


def _step(model, x, labels):
    """Forward, loss, backward; -> (what backward returned, every parameter's gradient)."""
    loss = sn.nn.CrossEntropyLoss()
    loss(model(x), labels)
    model.zero_grad()
    dx = model.backward(loss.backward())
    return dx, {name: p.grad.copy() for name, p in model.named_parameters()}


def _flags(model):
    return {name: m.needs_input_grad for name, m in model.named_modules()
            if isinstance(m, sn.nn.Conv2d)}


def test_the_stem_alone_skips_dx_and_every_parameter_gradient_is_unchanged():
    x, labels = _batch()
    dx, expected = _step(_model(), x, labels)
    assert dx.shape == x.shape
    model = _model()
    with sn.nn.data_gradient_skipped(model):
        skipped_dx, grads = _step(model, x, labels)
        inside = _flags(model)
    assert skipped_dx is None                      # no dL/dx computed for the images
    assert [name for name, flag in inside.items() if not flag] == ["conv1"]
    # dW of the stem comes from conv2d_weight_backward instead of conv2d_backward: the
    # same sums in the same order, so equal to rounding; the rest is the same code
    for name, grad in expected.items():
        np.testing.assert_allclose(grads[name], grad, rtol=1e-12, atol=1e-15, err_msg=name)
    assert all(_flags(model).values())             # restored on leaving


def test_a_copy_of_the_input_is_not_the_data():
    # the convolution reads the batch-normalised images, whose gradient backward must return
    model = sn.nn.Sequential(sn.nn.BatchNorm2d(3, dtype=np.float64),
                             sn.nn.Conv2d(3, 4, 3, padding=1, dtype=np.float64, rng=0))
    x = np.random.default_rng(2).standard_normal((2, 3, 5, 5))
    with sn.nn.data_gradient_skipped(model):
        out = model(x)
        assert model[1].needs_input_grad
        dx = model.backward(np.ones_like(out))
    assert dx.shape == x.shape


def test_flags_are_restored_after_an_error_and_a_chosen_false_is_kept():
    model = _model()
    model.layer1[0].conv1.needs_input_grad = False           # the user's own choice
    x, _ = _batch()
    with pytest.raises(RuntimeError, match="stop"):
        with sn.nn.data_gradient_skipped(model):
            model(x)
            assert not model.conv1.needs_input_grad
            raise RuntimeError("stop")
    flags = _flags(model)
    assert flags.pop("layer1.0.conv1") is False and all(flags.values())
    model(x)                                                  # the hooks are gone too
    assert model.conv1.needs_input_grad


def test_the_trainer_skips_the_images_gradient_while_it_trains(tmp_path):
    data = make_synthetic(5, SyntheticConfig(train_size=8, test_size=4))
    config = TrainConfig(model="se_tiny_resnet", data="synthetic:5", epochs=1, batch_size=4,
                         reduction=2, backend="numpy", seed=3)
    trainer = Trainer(config, str(tmp_path), quiet=True, dataset=data)
    stem, seen = trainer.model.conv1, []
    original = stem.backward

    def recording_backward(dy):
        seen.append(stem.needs_input_grad)
        return original(dy)
    object.__setattr__(stem, "backward", recording_backward)
    trainer.train_one_epoch()
    assert seen == [False, False]                 # two batches, neither computed dL/dx
    assert stem.needs_input_grad                  # and the model is as it was afterwards
