"""Optional: SelectiveKernel against timm's, float64, weights copied in (skipped without torch/timm).

Forward, input gradient, every parameter gradient and the BatchNorm running
statistics after a training step agree to 1e-10 relative (float64 on both
sides, ~1e-13 observed: the attention's BN normalises N = 2 values, which
amplifies rounding); a wrong dilation, split or softmax layout is off by O(1).
"""
import numpy as np  # noqa: F401
import pytest

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")

from attention_timm_reference import compare  # noqa: E402

import se_numpy as sn  # noqa: E402

pytestmark = pytest.mark.slow

CASES = [
    ((8,), {}, (2, 8, 5, 7)),
    ((8, 16), {"stride": 2, "rd_ratio": 1 / 8, "rd_divisor": 16}, (2, 8, 6, 5)),   # skresnet18's
    ((8, 8), {"split_input": False, "kernel_size": [3, 5, 7], "groups": 2}, (2, 8, 5, 5)),
    ((6,), {"kernel_size": 5, "keep_3x3": False, "split_input": False}, (2, 6, 4, 4)),
]


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("arguments, options, shape", CASES, ids=[str(c[1]) for c in CASES])
def test_matches_timm_in_float64(arguments, options, shape, train):
    from timm.layers import SelectiveKernel
    errors = compare(SelectiveKernel(*arguments, **options),
                     sn.nn.SelectiveKernel(*arguments, **options), shape, train)
    assert max(errors.values()) <= 1e-10, errors
