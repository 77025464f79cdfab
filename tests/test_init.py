"""``nn.init.uniform_fan_in``: the values PyTorch's default rule gives, drawn in little memory.

Trained results in the docs depend on the exact initial weights, so the
chunked draw must give bit for bit what one whole-tensor draw gives,
``rng.uniform(-b, b, size=shape).astype(dtype)``, and leave the generator in
the same state (the next layer's weights come from it).
"""
import tracemalloc

import numpy as np
import pytest

from se_numpy.nn import init


def one_draw(shape, fan_in, seed, dtype):
    """The rule as one float64 draw of the whole tensor, then a cast."""
    generator = np.random.default_rng(seed)
    bound = 1.0 / np.sqrt(max(1, fan_in))
    return generator.uniform(-bound, bound, size=shape).astype(dtype), generator


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, fan_in", [((), 1), ((0, 3), 3), ((5,), 5), ((7, 3, 3, 3), 27),
                                           ((64, 1000), 1000), ((70_001,), 70_001)])
def test_values_and_generator_state_are_those_of_one_whole_draw(shape, fan_in, dtype,
                                                                monkeypatch):
    for chunk in (init.DRAW_CHUNK, 7):        # the default chunk, and one that splits every shape
        monkeypatch.setattr(init, "DRAW_CHUNK", chunk)
        generator = np.random.default_rng(3)
        drawn = init.uniform_fan_in(shape, fan_in, generator, dtype)
        expected, reference_generator = one_draw(shape, fan_in, 3, dtype)
        assert drawn.dtype == dtype and drawn.shape == expected.shape
        np.testing.assert_array_equal(drawn, expected)
        assert generator.bit_generator.state == reference_generator.bit_generator.state


def test_a_large_float32_tensor_costs_about_its_own_size():
    shape = (1024, 2048)                              # 8 MiB in float32, 16 MiB as float64
    size = 4 * np.prod(shape)
    tracemalloc.start()
    try:
        weights = init.uniform_fan_in(shape, shape[1], 0, np.float32)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert weights.nbytes == size
    # the whole float64 draw then a cast would peak at 3x the size; one chunk adds 0.5 MiB
    assert peak < 1.25 * size, peak / size
