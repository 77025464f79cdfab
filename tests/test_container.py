"""Sequential, Flatten and Identity: ordering, naming, indexing, shapes, FLOPs and the chain rule."""
import numpy as np
import pytest

from se_numpy.gradcheck import check_module
from se_numpy.nn.container import Flatten, Identity, Sequential
from se_numpy.nn.conv import Conv2d
from se_numpy.nn.linear import Linear
from se_numpy.nn.norm import BatchNorm2d
from se_numpy.nn.pool import AvgPool2d, GlobalAvgPool


def small_net():
    return Sequential(Conv2d(2, 4, 3, padding=1, rng=0), BatchNorm2d(4), AvgPool2d(2),
                      Flatten(), Linear(16, 3, rng=1))


def test_children_are_named_by_position_like_pytorch():
    net = small_net()
    assert [name for name, _ in net.named_children()] == ["0", "1", "2", "3", "4"]
    assert list(net.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias",
                                      "1.running_mean", "1.running_var", "1.num_batches_tracked",
                                      "4.weight", "4.bias"]


def test_len_iteration_and_indexing():
    net = small_net()
    children = list(net.children())
    assert len(net) == 5
    assert list(net) == children
    assert net[0] is children[0] and net[-1] is children[4]
    head = net[3:]
    assert isinstance(head, Sequential) and len(head) == 2 and head[1] is children[4]
    with pytest.raises(IndexError):
        net[5]
    with pytest.raises(TypeError, match="expected Module arguments, got int at position 1"):
        Sequential(Identity(), 3)


def test_forward_runs_in_order_and_backward_in_reverse():
    calls = []

    class Recorder(Identity):
        def __init__(self, name):
            super().__init__()
            self.name = name

        def forward(self, x):
            calls.append(("forward", self.name))
            return x + 1

        def backward(self, dy):
            calls.append(("backward", self.name))
            return dy * 2

    net = Sequential(Recorder("a"), Recorder("b"))
    assert net(np.zeros(1))[0] == 2.0
    assert net.backward(np.ones(1))[0] == 4.0
    assert calls == [("forward", "a"), ("forward", "b"), ("backward", "b"), ("backward", "a")]


def test_backward_is_the_chain_of_the_children_backwards():
    net = small_net().astype(np.float64)
    x = np.random.default_rng(0).normal(size=(2, 2, 4, 4))
    y = net(x)
    dy = np.random.default_rng(1).normal(size=y.shape)
    dx = net.backward(dy)
    # The same network run layer by layer, with the same state (each child runs once per pass).
    twin = small_net().astype(np.float64)
    value = x
    for layer in twin:
        value = layer(value)
    np.testing.assert_array_equal(value, y)
    gradient = dy
    for layer in reversed(list(twin)):
        gradient = layer.backward(gradient)
    np.testing.assert_array_equal(gradient, dx)
    np.testing.assert_array_equal(twin[0].weight.grad, net[0].weight.grad)


def test_whole_network_passes_the_gradient_checker_in_train_and_eval_mode():
    net = small_net()
    x = np.random.default_rng(2).normal(size=(2, 2, 4, 4)).astype(np.float32)  # module's dtype
    assert check_module(net, x, mode="train", raise_on_fail=True).passed
    assert check_module(net, x, mode="eval", raise_on_fail=True).passed


def test_output_shape_and_flops_add_up_over_children():
    net = small_net()
    shape = (2, 2, 4, 4)
    assert net.output_shape(shape) == net(np.zeros(shape, dtype=np.float32)).shape == (2, 3)
    conv_macs = 2 * 4 * 4 * 4 * 2 * 3 * 3         # N·OH·OW·out·in·kh·kw
    linear_macs = 2 * 16 * 3                      # N·in·out
    assert net.flops(shape) == conv_macs + linear_macs


def test_flatten_forward_backward_and_errors():
    flatten = Flatten()
    x = np.arange(24.0).reshape(2, 3, 2, 2)
    y = flatten(x)
    np.testing.assert_array_equal(y, x.reshape(2, 12))
    assert flatten.output_shape(x.shape) == (2, 12) and flatten.flops(x.shape) == 0
    dy = np.arange(24.0).reshape(2, 12) * -1
    np.testing.assert_array_equal(flatten.backward(dy), dy.reshape(2, 3, 2, 2))
    with pytest.raises(ValueError, match=r"dy: expected shape \(2, 12\)"):
        flatten.backward(np.zeros((2, 11)))
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        flatten(np.zeros(3))
    with pytest.raises(TypeError, match="got int64"):
        flatten(np.zeros((2, 3), dtype=np.int64))


def test_identity_and_float32_through_a_sequential():
    net = Sequential(Identity(), GlobalAvgPool(), Identity())
    x = np.random.default_rng(0).normal(size=(2, 3, 2, 2)).astype(np.float32)
    y = net(x)
    assert y.dtype == np.float32 and y.shape == (2, 3)
    dx = net.backward(np.ones_like(y))
    assert dx.dtype == np.float32
    np.testing.assert_allclose(dx, np.full(x.shape, 0.25, dtype=np.float32), rtol=0)
    assert Identity().output_shape((1, 2)) == (1, 2) and Identity().flops((1, 2)) == 0
