"""Modules that arrange or reshape others: ``Sequential``, ``Flatten``, ``Identity``."""
import numpy as np

from .._validation import check_float_array, check_shape
from .module import Module, _require_cache


class Sequential(Module):
    """Runs its children in order; backward runs them in reverse (the chain rule).

    Children are named "0", "1", ... as in PyTorch, so parameter names read
    ``0.weight``, ``1.running_mean``, ... Supports ``len``, iteration and
    indexing (an int gives a child; a slice gives a new Sequential of the same children).
    """

    def __init__(self, *modules):
        super().__init__()
        for index, module in enumerate(modules):
            if not isinstance(module, Module):
                raise TypeError(f"Sequential: expected Module arguments, got "
                                f"{type(module).__name__} at position {index}")
            self.add_module(str(index), module)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, index):
        children = list(self._modules.values())
        if isinstance(index, slice):
            return Sequential(*children[index])
        return children[index]

    def forward(self, x):
        for module in self:
            x = module(x)
        return x

    def backward(self, dy):
        for module in reversed(list(self)):
            dy = module.backward(dy)
        return dy

    def output_shape(self, input_shape):
        shape = tuple(input_shape)
        for module in self:
            shape = module.output_shape(shape)
        return shape

    def flops(self, input_shape):
        """Sum of the children's multiply-accumulates, each at the shape it receives."""
        total, shape = 0, tuple(input_shape)
        for module in self:
            total += module.flops(shape)
            shape = module.output_shape(shape)
        return total


class Flatten(Module):
    """(N, d1, d2, ...) -> (N, d1·d2·...), as ``torch.nn.Flatten()``; backward reshapes back."""

    def forward(self, x):
        check_float_array(x, "x")
        if x.ndim < 2:
            raise ValueError(f"x: expected at least 2 dimensions (N, ...), got shape {x.shape}")
        self._cache = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy):
        x_shape = _require_cache(self)
        check_shape(dy, (x_shape[0], int(np.prod(x_shape[1:]))), "dy")
        return dy.reshape(x_shape)

    def output_shape(self, input_shape):
        return (input_shape[0], int(np.prod(input_shape[1:])))

    def flops(self, input_shape):
        return 0


class Identity(Module):
    """y = x, dx = dy: a placeholder (e.g. a shortcut without projection)."""

    def forward(self, x):
        return x

    def backward(self, dy):
        return dy

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def flops(self, input_shape):
        return 0
