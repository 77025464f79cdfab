"""The two things a check can be run on, reduced to one shape: arrays in, y out, gradients back.

``FunctionProblem`` wraps f(*inputs) and vjp(dy, *inputs). ``ModuleProblem``
turns a Module into the same form, with the input x and every named parameter
as the "inputs": forward(x, *parameter values) sets the parameters, resets the
buffers, and runs the module; backward(dy, x, *parameter values) runs forward
then ``module.backward(dy)`` and collects dL/dx and every ``p.grad``.

The checker calls ``raw_forward``/``raw_backward`` on arrays it owns (copies),
so nothing the user passed in is ever touched.
"""
import copy

import numpy as np

from . import invariants


class GradientCountError(ValueError):
    """The backward did not return one gradient per input: nothing can be compared."""


def as_outputs(result, who):
    """The output of f as one floating ndarray; a tuple or anything else is refused clearly.

    ``np.asarray`` would stack a tuple of equal-shaped outputs silently (and
    fail inside NumPy for unequal shapes): a tuple is handled one output at a
    time by ``check_vjp`` (see ``outputs.py``) and is an error here.
    """
    if isinstance(result, (tuple, list)):
        raise TypeError(f"{who} returned a {type(result).__name__} of {len(result)} outputs: "
                        "expected one ndarray here (check_vjp checks a tuple of outputs one "
                        "output at a time; a module must return one array)")
    array = np.asarray(result)
    if array.dtype.kind not in "fiu":
        raise TypeError(f"{who} returned {type(result).__name__} of dtype {array.dtype}: "
                        "expected a floating-point ndarray")
    return array


def as_gradient_tuple(result, count, who):
    """vjp results as a tuple: a bare array is accepted when there is one input."""
    if isinstance(result, np.ndarray) and count == 1:
        return (result,)
    if not isinstance(result, (tuple, list)):
        raise GradientCountError(f"{who} returned a {type(result).__name__}: expected a tuple of "
                         f"{count} arrays, one per input")
    if len(result) != count:
        raise GradientCountError(f"{who} returned {len(result)} gradients: expected {count}, "
                         "one per input, in the order of the inputs")
    return tuple(result)


class FunctionProblem:
    """f(*inputs) -> y and vjp(dy, *inputs) -> gradients, for any function of arrays."""

    def __init__(self, f, vjp, caller_arrays, names):
        self.f, self.vjp = f, vjp
        self.caller_arrays = [array.copy() for array in caller_arrays]
        self.dtype_check_arrays = self.caller_arrays
        self.names = names
        self.forward_name, self.backward_name = "f", "vjp"
        self.title = f"check_vjp({getattr(f, '__name__', type(f).__name__)})"

    def raw_forward(self, arrays):
        return self.f(*arrays)

    def raw_backward(self, dy, arrays):
        return as_gradient_tuple(self.vjp(dy, *arrays), len(arrays), "vjp")

    def caller_dtype_gradients(self, dy):
        """Gradients computed in the caller's dtypes (for the dtype invariant)."""
        arrays = [array.copy() for array in self.dtype_check_arrays]
        y = np.asarray(self.f(*arrays))
        return self.raw_backward(dy.astype(y.dtype), arrays)

    def extra_invariants(self, arrays, dy):
        return []


class ModuleProblem:
    """A Module seen as a function of (x, *parameters), on a float64 deep copy."""

    def __init__(self, module, x, mode):
        self.caller_module = copy.deepcopy(module)
        if mode is not None:
            self.caller_module.train(mode == "train")
        self.module = copy.deepcopy(self.caller_module).astype(np.float64)
        self.named = list(self.module.named_parameters())
        # buffers (e.g. BatchNorm running statistics) change in a training forward;
        # restoring them before every forward makes every evaluation see the same state
        self.saved_buffers = [(owner, name, np.array(getattr(owner, name)))
                              for owner in self.module.modules() for name in owner._buffers]
        self.names = ["x"] + [name for name, _ in self.named]
        parameters = [p.data.copy() for _, p in self.caller_module.named_parameters()]
        self.caller_arrays = [x.copy()] + parameters
        # the dtype invariant runs the module in its own dtype: a float32 module
        # gets a float32 x even when the check was given a float64 one
        dtypes = {array.dtype for array in parameters}
        module_x = x.astype(dtypes.pop()) if len(dtypes) == 1 else x.copy()
        self.dtype_check_arrays = [module_x] + parameters
        self.forward_name, self.backward_name = "module forward", "module backward"
        self.title = f"check_module({type(module).__name__})"

    def raw_forward(self, arrays):
        x, *parameter_values = arrays
        for owner, name, saved in self.saved_buffers:     # only the buffers: every parameter
            object.__setattr__(owner, name, saved.copy())  # is overwritten just below
        for (_, parameter), value in zip(self.named, parameter_values):
            np.copyto(parameter.data, value)      # perturb p.data in place
        return self.module(x)

    def raw_backward(self, dy, arrays):
        self.raw_forward(arrays)
        self.module.zero_grad()
        dx = self.module.backward(dy)
        return (dx, *[parameter.grad.copy() for _, parameter in self.named])

    def caller_dtype_gradients(self, dy):
        module = copy.deepcopy(self.caller_module)
        module.zero_grad()
        y = np.asarray(module(self.dtype_check_arrays[0].copy()))
        dx = module.backward(dy.astype(y.dtype))
        return (dx, *[parameter.grad for parameter in module.parameters()])

    def extra_invariants(self, arrays, dy):
        """Accumulation into p.grad, and parameters left as they were set."""
        if not self.named:
            return []
        parameter_names = self.names[1:]
        self.raw_backward(dy, [a.copy() for a in arrays])
        first = [parameter.grad.copy() for _, parameter in self.named]
        self.raw_forward([a.copy() for a in arrays])
        self.module.backward(dy.copy())          # no zero_grad: must add
        second = [parameter.grad.copy() for _, parameter in self.named]
        after = [parameter.data for _, parameter in self.named]
        return [invariants.accumulation(first, second, parameter_names),
                invariants.unchanged(arrays[1:], after, parameter_names,
                                     "module forward and backward (p.data)")]
