"""Softmax cross-entropy over class logits, mean over the batch, forward and backward.

Shapes: logits (N, K) float, labels (N,) integers in [0, K); loss is a Python float.

Forward. With the target distribution t (one-hot, or smoothed with ε)::

    t[n,k]        = (1 − ε)·1[k = labels[n]] + ε/K        (ε = label_smoothing; ε = 0: one-hot)
    log p[n,k]    = z[n,k] − m_n − log Σ_j exp(z[n,j] − m_n),   m_n = max_j z[n,j]
    loss          = −1/N Σ_n Σ_k t[n,k] · log p[n,k]

Subtracting the row maximum m_n changes nothing mathematically (it cancels in
p = e^z / Σ e^z) but keeps every exponent <= 0, so exp never overflows and the
largest term is exactly 1, so the log never sees 0 (the "log-sum-exp trick").
The smoothed loss is the one PyTorch computes: (1 − ε)·NLL + ε·mean_k(−log p).

Backward. For one row, loss_n = −Σ_k t_k log p_k with Σ_k t_k = 1, and
∂ log p_k / ∂ z_j = 1[k = j] − p_j, so

    ∂loss_n/∂z_j = −Σ_k t_k (1[k = j] − p_j) = p_j − t_j

and the mean over the batch divides by N::

    dlogits = dloss · (softmax(z) − t) / N
"""
from typing import NamedTuple

import numpy as np

from .._validation import check_float_array


class CrossEntropyCache(NamedTuple):
    """What ``softmax_cross_entropy_backward`` needs."""
    probabilities: np.ndarray       # softmax(logits), (N, K)
    targets: np.ndarray             # t, (N, K), one-hot or smoothed


def _check_labels(labels, batch_size, num_classes):
    if not isinstance(labels, np.ndarray):
        raise TypeError(f"labels: expected a numpy.ndarray of integer class indices, "
                        f"got {type(labels).__name__}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"labels: expected an integer dtype (class indices), got {labels.dtype}")
    if labels.shape != (batch_size,):
        raise ValueError(f"labels: expected shape ({batch_size},) to match logits, "
                         f"got {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)]
        raise ValueError(f"labels: expected class indices in [0, {num_classes}), "
                         f"got {bad[:5].tolist()}{' ...' if bad.size > 5 else ''}")


def log_softmax(logits):
    """log softmax along the last axis, stable: z − max − log Σ exp(z − max)."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def target_distribution(labels, num_classes, label_smoothing, dtype):
    """t = (1 − ε)·one_hot(labels) + ε/K, shape (N, K)."""
    targets = np.full((labels.shape[0], num_classes), label_smoothing / num_classes, dtype=dtype)
    targets[np.arange(labels.shape[0]), labels] += dtype.type(1.0 - label_smoothing)
    return targets


def softmax_cross_entropy_forward(logits, labels, label_smoothing=0.0):
    """Mean softmax cross-entropy.  Returns ``(loss, cache)`` with ``loss`` a Python float.

    logits (N, K) float32/float64, finite; labels (N,) integer array in [0, K);
    label_smoothing ε in [0, 1].
    """
    check_float_array(logits, "logits", ndim=2, finite=True)
    batch_size, num_classes = logits.shape
    if batch_size == 0 or num_classes == 0:
        raise ValueError(f"logits: expected at least one sample and one class, got {logits.shape}")
    _check_labels(labels, batch_size, num_classes)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing: expected a number in [0, 1], got {label_smoothing!r}")

    log_probabilities = log_softmax(logits)
    targets = target_distribution(labels, num_classes, label_smoothing, logits.dtype)
    # Sum in float64 so the mean of a float32 batch is rounded once.
    loss = -float(np.sum(targets * log_probabilities, dtype=np.float64)) / batch_size
    return loss, CrossEntropyCache(np.exp(log_probabilities), targets)


def softmax_cross_entropy_backward(dloss, cache):
    """dlogits = dloss · (softmax(logits) − t) / N, shape (N, K), the logits' dtype.

    ``dloss`` is dL/d(loss), a number: 1.0 when the loss is the final objective.
    """
    probabilities, targets = cache
    if not np.isscalar(dloss) and np.ndim(dloss) != 0:
        raise ValueError(f"dloss: expected a scalar (the loss is a number), got shape "
                         f"{np.shape(dloss)}")
    batch_size = probabilities.shape[0]
    scale = probabilities.dtype.type(float(dloss) / batch_size)
    return (probabilities - targets) * scale
