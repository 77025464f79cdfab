"""Softmax cross-entropy: hand values, loop evaluation, stability, gradients, dtypes, errors."""
import math
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from se_numpy.functional.loss import softmax_cross_entropy_backward, softmax_cross_entropy_forward
from se_numpy.nn.loss import CrossEntropyLoss

# Central differences in float64, step 1e-6: the loss is smooth with O(1) derivatives, so the
# truncation error is ~1e-12 and rounding ~1e-16·|loss|/step ~ 1e-10; gradient entries are O(1/N).
STEP, TOLERANCE = 1e-6, 1e-7


def loop_cross_entropy(logits, labels, smoothing):
    """−1/N Σ_n Σ_k t[n,k] log p[n,k], written with math.exp/math.log one number at a time."""
    total = 0.0
    n_batch, classes = logits.shape
    for n in range(n_batch):
        normaliser = sum(math.exp(logits[n, j]) for j in range(classes))
        for k in range(classes):
            target = (1 - smoothing) * (k == labels[n]) + smoothing / classes
            total -= target * math.log(math.exp(logits[n, k]) / normaliser)
    return total / n_batch


# --------------------------------------------------------------------------- forward
def test_forward_by_hand():
    # Equal logits over 2 classes: p = ½ each, loss = log 2.
    loss, _ = softmax_cross_entropy_forward(np.zeros((1, 2)), np.array([0]))
    assert loss == pytest.approx(math.log(2), rel=1e-15)
    # Logits (log 1, log 3): p = (¼, ¾). Label 1: −log ¾. With ε = 0.2 over K = 2: t = (0.1, 0.9).
    logits = np.log(np.array([[1.0, 3.0]]))
    loss, _ = softmax_cross_entropy_forward(logits, np.array([1]))
    assert loss == pytest.approx(-math.log(0.75), rel=1e-14)
    loss, cache = softmax_cross_entropy_forward(logits, np.array([1]), label_smoothing=0.2)
    assert loss == pytest.approx(-(0.1 * math.log(0.25) + 0.9 * math.log(0.75)), rel=1e-14)
    # dlogits = p − t = (¼ − 0.1, ¾ − 0.9)
    np.testing.assert_allclose(softmax_cross_entropy_backward(1.0, cache), [[0.15, -0.15]],
                               rtol=1e-13)


@given(st.integers(1, 4), st.integers(1, 5), st.sampled_from([0.0, 0.1, 0.5, 1.0]),
       st.integers(0, 2**16))
def test_forward_matches_loops(n_batch, classes, smoothing, seed):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n_batch, classes)) * 3
    labels = rng.integers(0, classes, size=n_batch)
    loss, _ = softmax_cross_entropy_forward(logits, labels, smoothing)
    assert isinstance(loss, float)
    assert loss == pytest.approx(loop_cross_entropy(logits, labels, smoothing), rel=1e-12, abs=1e-12)


def test_large_logits_do_not_overflow():
    logits = np.array([[1000.0, 0.0], [-1000.0, 1000.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # an overflow in exp would raise here
        loss, cache = softmax_cross_entropy_forward(logits, np.array([0, 0]))
        dlogits = softmax_cross_entropy_backward(1.0, cache)
    # Sample 0 is certain and right (loss 0); sample 1 is certain and wrong by 2000.
    assert loss == pytest.approx(2000.0 / 2, rel=1e-15)
    np.testing.assert_allclose(dlogits, [[0.0, 0.0], [-0.5, 0.5]], atol=1e-15)


# --------------------------------------------------------------------------- gradients
@given(st.integers(1, 4), st.integers(1, 5), st.floats(0.0, 1.0), st.floats(-2.0, 2.0),
       st.integers(0, 2**16))
def test_gradient_matches_finite_differences(n_batch, classes, smoothing, dloss, seed):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n_batch, classes)) * 2
    labels = rng.integers(0, classes, size=n_batch)
    loss, cache = softmax_cross_entropy_forward(logits, labels, smoothing)
    dlogits = softmax_cross_entropy_backward(dloss, cache)
    numerical = np.zeros_like(logits)
    for index in np.ndindex(logits.shape):
        original = logits[index]
        logits[index] = original + STEP
        plus = softmax_cross_entropy_forward(logits, labels, smoothing)[0]
        logits[index] = original - STEP
        minus = softmax_cross_entropy_forward(logits, labels, smoothing)[0]
        logits[index] = original
        numerical[index] = dloss * (plus - minus) / (2 * STEP)
    np.testing.assert_allclose(dlogits, numerical, rtol=TOLERANCE, atol=TOLERANCE)
    # Both p and t sum to 1 over the classes, so every row of the gradient sums to 0.
    np.testing.assert_allclose(dlogits.sum(axis=1), 0, atol=1e-15)


# --------------------------------------------------------------------------- module, dtypes
def test_module_forward_backward_and_float32():
    loss_fn = CrossEntropyLoss(label_smoothing=0.1)
    logits = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    labels = np.array([0, 3, 1])
    loss = loss_fn(logits, labels)
    dlogits = loss_fn.backward()
    assert isinstance(loss, float) and dlogits.dtype == np.float32 and dlogits.shape == (3, 4)
    assert loss == pytest.approx(loop_cross_entropy(logits.astype(np.float64), labels, 0.1),
                                 rel=1e-6)
    _, cache = softmax_cross_entropy_forward(logits.astype(np.float64), labels, 0.1)
    np.testing.assert_allclose(dlogits, softmax_cross_entropy_backward(1.0, cache), atol=1e-7)
    np.testing.assert_allclose(loss_fn.backward(2.0), 2 * dlogits, rtol=1e-6)


def test_bad_input_errors():
    logits = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"class indices in \[0, 3\), got \[3\]"):
        softmax_cross_entropy_forward(logits, np.array([0, 3]))
    with pytest.raises(ValueError, match=r"got \[-1\]"):
        softmax_cross_entropy_forward(logits, np.array([-1, 0]))
    with pytest.raises(TypeError, match="integer dtype"):
        softmax_cross_entropy_forward(logits, np.array([0.0, 1.0]))
    with pytest.raises(TypeError, match="numpy.ndarray"):
        softmax_cross_entropy_forward(logits, [0, 1])
    with pytest.raises(ValueError, match=r"labels: expected shape \(2,\)"):
        softmax_cross_entropy_forward(logits, np.array([[0, 1]]))
    with pytest.raises(ValueError, match="2-d"):
        softmax_cross_entropy_forward(np.zeros(3), np.array([0]))
    with pytest.raises(TypeError, match="got int64"):
        softmax_cross_entropy_forward(np.zeros((2, 3), dtype=np.int64), np.array([0, 1]))
    with pytest.raises(ValueError, match="finite"):
        softmax_cross_entropy_forward(np.array([[np.nan, 0.0]]), np.array([0]))
    with pytest.raises(ValueError, match="label_smoothing"):
        CrossEntropyLoss(label_smoothing=1.5)
    with pytest.raises(RuntimeError, match="before forward"):
        CrossEntropyLoss().backward()


# --------------------------------------------------------------------------- PyTorch (optional)
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_agrees_with_torch(smoothing):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    logits, labels = rng.normal(size=(5, 4)) * 3, rng.integers(0, 4, size=5)
    loss_fn = CrossEntropyLoss(label_smoothing=smoothing)
    loss = loss_fn(logits, labels)
    tlogits = torch.tensor(logits, requires_grad=True)
    tloss = torch.nn.CrossEntropyLoss(label_smoothing=smoothing)(tlogits, torch.tensor(labels))
    tloss.backward()
    assert loss == pytest.approx(tloss.item(), rel=1e-12)
    np.testing.assert_allclose(loss_fn.backward(), tlogits.grad.numpy(), rtol=1e-10, atol=1e-12)
