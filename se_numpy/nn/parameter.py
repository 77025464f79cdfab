"""A trainable array and the gradient that backward accumulates into it."""
import numpy as np


class Parameter:
    """``data`` holds the value, ``grad`` the accumulated dL/d(data) (same shape and dtype).

    Backward passes *add* into ``grad`` (a parameter used twice gets both
    contributions); ``Module.zero_grad()`` resets it.
    """

    def __init__(self, data):
        self.data = np.asarray(data)
        # np.zeros (not zeros_like) gets zeroed pages from the OS that take no memory until
        # written: a model used only for inference never pays for its gradients
        self.grad = np.zeros(self.data.shape, self.data.dtype)

    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def size(self):
        return self.data.size

    def zero_grad(self):
        self.grad = np.zeros_like(self.data)

    def accumulate(self, gradient):
        """grad += gradient, refusing anything that would broadcast."""
        if gradient.shape != self.data.shape:
            raise ValueError(f"gradient shape {gradient.shape} does not match parameter "
                             f"shape {self.data.shape}")
        self.grad = self.grad + gradient.astype(self.data.dtype, copy=False)

    def __repr__(self):
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"
