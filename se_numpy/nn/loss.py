"""``CrossEntropyLoss`` as ``torch.nn.CrossEntropyLoss`` (mean reduction; math in functional/loss.py).

    loss_fn = CrossEntropyLoss(label_smoothing=0.1)
    loss = loss_fn(logits, labels)      # float
    dlogits = loss_fn.backward()        # dL/dlogits, (N, K)
"""
from ..functional.loss import softmax_cross_entropy_backward, softmax_cross_entropy_forward
from .module import Module, _require_cache


class CrossEntropyLoss(Module):
    """Softmax cross-entropy of logits (N, K) against integer labels (N,), mean over the batch.

    ``label_smoothing`` ε mixes the one-hot target with the uniform distribution:
    t = (1 − ε)·one_hot + ε/K (PyTorch's definition).
    """

    def __init__(self, label_smoothing=0.0):
        super().__init__()
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"label_smoothing: expected a number in [0, 1], "
                             f"got {label_smoothing!r}")
        self.label_smoothing = float(label_smoothing)

    def forward(self, logits, labels):
        loss, self._cache = softmax_cross_entropy_forward(logits, labels, self.label_smoothing)
        return loss

    def backward(self, dloss=1.0):
        """dL/dlogits; ``dloss`` scales it when the loss is part of a larger objective."""
        return softmax_cross_entropy_backward(dloss, _require_cache(self))

    def extra_repr(self):
        return f"label_smoothing={self.label_smoothing}" if self.label_smoothing else ""
