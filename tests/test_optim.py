"""SGD against updates worked out by hand, and schedules against their closed forms."""
import math

import numpy as np
import pytest

import se_numpy as sn
from se_numpy.nn.module import Module
from se_numpy.nn.parameter import Parameter
from se_numpy.optim import (SGD, ConstantSchedule, CosineSchedule, LinearWarmup,
                            MultiStepSchedule, StepSchedule, make_schedule, param_groups)

# Updates are a handful of float64 multiply-adds, so they agree with the hand
# arithmetic to rounding (~1e-16 relative); 1e-12 leaves room for that and
# nothing more.
EXACT = dict(rtol=1e-12, atol=1e-14)


def _parameter(value, grad):
    parameter = Parameter(np.array([value], dtype=np.float64))
    parameter.grad = np.array([grad], dtype=np.float64)
    return parameter


def test_momentum_and_weight_decay_by_hand():
    p = _parameter(1.0, 0.5)
    opt = SGD([p], lr=0.1, momentum=0.9, weight_decay=0.01)
    opt.step()
    # d_p = 0.5 + 0.01·1 = 0.51; first step: buf = d_p = 0.51; p = 1 − 0.1·0.51
    np.testing.assert_allclose(p.data, [0.949], **EXACT)
    opt.step()
    # d_p = 0.5 + 0.01·0.949 = 0.50949; buf = 0.9·0.51 + 0.50949 = 0.96849
    # p = 0.949 − 0.1·0.96849 = 0.852151
    np.testing.assert_allclose(p.data, [0.852151], **EXACT)
    np.testing.assert_allclose(opt.momentum_buffers[0], [0.96849], **EXACT)


def test_nesterov_by_hand():
    p = _parameter(1.0, 0.5)
    opt = SGD([p], lr=0.1, momentum=0.9, weight_decay=0.01, nesterov=True)
    opt.step()
    # d_p = 0.51, buf = 0.51, step direction = 0.51 + 0.9·0.51 = 0.969 -> p = 0.9031
    np.testing.assert_allclose(p.data, [0.9031], **EXACT)
    opt.step()
    # d_p = 0.5 + 0.009031 = 0.509031; buf = 0.459 + 0.509031 = 0.968031
    # direction = 0.509031 + 0.9·0.968031 = 1.3802589 -> p = 0.9031 − 0.13802589
    np.testing.assert_allclose(p.data, [0.76507411], **EXACT)


def test_dampening_skips_the_first_step():
    p = _parameter(1.0, 1.0)
    opt = SGD([p], lr=0.1, momentum=0.9, weight_decay=0.0, dampening=0.5)
    opt.step()                       # buf = 1 (no dampening on step 1) -> p = 0.9
    np.testing.assert_allclose(p.data, [0.9], **EXACT)
    opt.step()                       # buf = 0.9·1 + 0.5·1 = 1.4 -> p = 0.9 − 0.14
    np.testing.assert_allclose(p.data, [0.76], **EXACT)


def test_plain_sgd_without_momentum():
    p = _parameter(2.0, -1.0)
    SGD([p], lr=0.5, momentum=0.0, weight_decay=0.25).step()
    # d_p = −1 + 0.25·2 = −0.5 -> p = 2 + 0.25
    np.testing.assert_allclose(p.data, [2.25], **EXACT)


def test_float32_parameters_stay_float32():
    p = Parameter(np.ones(3, np.float32))
    p.grad = np.full(3, 0.5, np.float32)
    opt = SGD([p], lr=0.1)
    opt.step()
    opt.step()
    assert p.data.dtype == np.float32 and opt.momentum_buffers[0].dtype == np.float32


class _TwoLayer(Module):
    def __init__(self):
        super().__init__()
        self.weight = Parameter(np.ones((2, 3)))
        self.bias = Parameter(np.ones(2))


def test_param_groups_exempt_one_dimensional_parameters():
    model = _TwoLayer()
    groups = param_groups(model, weight_decay=0.5)
    assert [g["name"] for g in groups] == ["decay", "no_decay"]
    assert groups[0]["params"] == [model.weight] and groups[1]["params"] == [model.bias]
    opt = SGD(groups, lr=1.0, momentum=0.0)
    opt.step()                     # zero gradients: only weight decay moves anything
    np.testing.assert_allclose(model.weight.data, 0.5, **EXACT)     # 1 − 1·0.5·1
    np.testing.assert_allclose(model.bias.data, 1.0, **EXACT)
    assert len(param_groups(model, 0.5, no_decay_bn_bias=False)) == 1


def test_state_dict_round_trip_continues_identically():
    def make():
        p = _parameter(1.0, 0.0)
        return p, SGD([p], lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)

    p, opt = make()
    for g in (0.5, -0.2):
        p.grad = np.array([g])
        opt.step()
    state = opt.state_dict()
    assert all(isinstance(v, np.ndarray) for v in state.values())
    q, resumed = make()
    q.data = p.data.copy()
    resumed.load_state_dict(state)
    for parameter, optimiser in ((p, opt), (q, resumed)):
        parameter.grad = np.array([0.3])
        optimiser.step()
    np.testing.assert_array_equal(p.data, q.data)
    assert resumed.step_count == 3


def test_set_lr_scales_each_group_from_its_initial_lr():
    model = _TwoLayer()
    groups = param_groups(model, 0.0)
    groups[1]["lr"] = 0.02
    opt = SGD(groups, lr=0.1)
    opt.set_lr(0.5)
    assert [g["lr"] for g in opt.param_groups] == [0.05, 0.01]


def test_set_lr_factor_is_a_factor_of_the_initial_rate_not_a_rate():
    model = _TwoLayer()
    opt = SGD(model.parameters(), lr=0.1)
    opt.set_lr_factor(0.25)
    opt.set_lr_factor(0.5)          # relative to the initial 0.1, not to the current 0.025
    assert [g["lr"] for g in opt.param_groups] == [0.05]
    opt.set_lr(0.5)                 # the old name does the same
    assert [g["lr"] for g in opt.param_groups] == [0.05]
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="factor"):
            opt.set_lr_factor(bad)
    assert [g["lr"] for g in opt.param_groups] == [0.05]


def test_sgd_rejects_bad_hyperparameters():
    p = _parameter(1.0, 0.0)
    with pytest.raises(ValueError, match="lr"):
        SGD([p], lr=-1)
    with pytest.raises(ValueError, match="nesterov"):
        SGD([p], momentum=0.0, nesterov=True)
    with pytest.raises(TypeError, match="Parameter"):
        SGD([np.ones(3)])
    with pytest.raises(ValueError, match="empty"):
        SGD([])


def test_step_schedule_closed_form():
    schedule = StepSchedule(step_size=3, gamma=0.1)
    assert [schedule.factor(t) for t in range(7)] == pytest.approx(
        [1, 1, 1, 0.1, 0.1, 0.1, 0.01], rel=1e-12)
    multi = MultiStepSchedule([2, 5], gamma=0.5)
    assert [multi.factor(t) for t in (0, 1, 2, 4, 5, 9)] == [1, 1, 0.5, 0.5, 0.25, 0.25]


def test_cosine_schedule_closed_form():
    schedule = CosineSchedule(total_steps=4)
    # ½(1 + cos(π t / 4)): 1, (1 + √2/2)/2, ½, (1 − √2/2)/2, 0, then flat at 0
    expected = [1.0, 0.8535533905932737, 0.5, 0.14644660940672627, 0.0, 0.0]
    assert [schedule.factor(t) for t in range(6)] == pytest.approx(expected, abs=1e-15)
    assert CosineSchedule(4, min_factor=0.1).factor(2) == pytest.approx(0.55, rel=1e-12)


def test_linear_warmup_and_composition():
    warmup = LinearWarmup(warmup_steps=4, start_factor=0.2)
    assert [warmup.factor(t) for t in (0, 1, 2, 4, 10)] == pytest.approx(
        [0.2, 0.4, 0.6, 1.0, 1.0], rel=1e-12)
    composed = LinearWarmup(4, 0.2, then=CosineSchedule(8))
    # 0.6 · ½(1 + cos(π/4)) = 0.6 · 0.853553... = 0.512132...
    assert composed.factor(2) == pytest.approx(0.6 * (1 + math.sqrt(0.5)) / 2, rel=1e-12)
    assert ConstantSchedule().factor(123) == 1.0


def test_make_schedule_by_name():
    assert isinstance(make_schedule("cosine", 10), CosineSchedule)
    assert make_schedule("step", 9).factor(3) == pytest.approx(0.1)
    assert isinstance(make_schedule("constant", 5, warmup_steps=2), LinearWarmup)
    with pytest.raises(ValueError, match="cosine"):
        make_schedule("exponential", 5)


def test_public_names():
    assert sn.optim.SGD is SGD and sn.optim.param_groups is param_groups
