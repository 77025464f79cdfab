"""``Module``: the PyTorch-like base class, with an explicit ``backward``.

A module's ``forward(x)`` computes its output and keeps in ``self._cache``
what its backward needs; ``backward(dy)`` consumes that cache, returns dL/dx
and *adds* dL/dp into every parameter's ``grad``. Children are found by
attribute assignment, as in PyTorch, so names like ``layer1.0.conv1.weight``
come out of the attribute path.
"""
import itertools
from collections import OrderedDict

import numpy as np

from .load_report import format_load_problems
from .parameter import Parameter


_hook_keys = itertools.count()


class HookHandle:
    """What ``Module.register_forward_hook`` returns; ``remove()`` unregisters the hook."""

    def __init__(self, hooks, key):
        self._hooks, self._key = hooks, key

    def remove(self):
        self._hooks.pop(self._key, None)


class Module:
    """Base class for layers and networks.

    Subclasses set parameters (``Parameter``), buffers (``register_buffer``,
    e.g. BatchNorm running statistics) and child modules as attributes, and
    implement ``forward`` and ``backward``.
    """

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_cache", None)
        object.__setattr__(self, "_forward_hooks", OrderedDict())

    # ------------------------------------------------------------ registration
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}: call Module.__init__() before "
                               "assigning attributes")
        if name in self._buffers and isinstance(value, np.ndarray):
            # re-assigning a buffer (self.running_mean = ...) keeps it a buffer, as in PyTorch
            object.__setattr__(self, name, value)
            return
        for table in (self._parameters, self._buffers, self._modules):
            table.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def register_buffer(self, name, value):
        """State that is saved in ``state_dict`` but not trained (e.g. running_mean)."""
        object.__setattr__(self, name, value)
        self._buffers[name] = True

    def add_module(self, name, module):
        setattr(self, name, module)

    # ------------------------------------------------------------ forward / backward
    def forward(self, x):
        raise NotImplementedError

    def backward(self, dy):
        raise NotImplementedError

    def __call__(self, *args, **kwargs):
        return self.run_forward_hooks(args, self.forward(*args, **kwargs))

    # ------------------------------------------------------------ observing forwards
    def register_forward_hook(self, hook):
        """Call ``hook(module, args, output)`` after every forward of this module, as
        PyTorch's ``register_forward_hook``; returns a ``HookHandle`` (``.remove()``).

        Every forward variant runs the hooks once: ``module(x)``, and an attention
        block's fused ``forward_add(x, shortcut)`` / ``forward_add_relu`` (which a
        residual unit calls instead) with their own arguments and output. So an
        observer (``analysis.record_gates`` reads ``last_gates`` in its hook) sees
        every call, and no layer needs to know it is observed. After an in-place
        forward (``SEBlock(inplace=True)`` in evaluation mode) ``args[0]`` holds the
        output. The hook's return value is ignored: unlike PyTorch, it cannot replace
        the output, which ``backward`` would then not match.
        """
        if not callable(hook):
            raise TypeError(f"hook: expected a callable (module, args, output), "
                            f"got {type(hook).__name__}")
        key = next(_hook_keys)
        self._forward_hooks[key] = hook
        return HookHandle(self._forward_hooks, key)

    def run_forward_hooks(self, args, output):
        """Call every registered forward hook with ``(self, args, output)``; returns ``output``."""
        for hook in tuple(self._forward_hooks.values()):
            hook(self, args, output)
        return output

    # ------------------------------------------------------------ traversal
    def named_modules(self, prefix=""):
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self):
        for _, module in self.named_modules():
            yield module

    def children(self):
        return iter(self._modules.values())

    def named_children(self):
        return iter(self._modules.items())

    def named_parameters(self, prefix=""):
        for module_name, module in self.named_modules(prefix):
            for name, parameter in module._parameters.items():
                yield (f"{module_name}.{name}" if module_name else name), parameter

    def parameters(self):
        return [parameter for _, parameter in self.named_parameters()]

    def named_buffers(self, prefix=""):
        for module_name, module in self.named_modules(prefix):
            for name in module._buffers:
                yield (f"{module_name}.{name}" if module_name else name), getattr(module, name)

    # ------------------------------------------------------------ modes and gradients
    def train(self, mode=True):
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self):
        for parameter in self.parameters():
            parameter.zero_grad()

    def astype(self, dtype):
        """Cast every parameter and float buffer to ``dtype`` (e.g. float64 for gradient checks)."""
        for module in self.modules():
            for parameter in module._parameters.values():
                parameter.data = parameter.data.astype(dtype)
                parameter.grad = parameter.grad.astype(dtype)
            for name in module._buffers:
                value = getattr(module, name)
                if np.issubdtype(value.dtype, np.floating):
                    object.__setattr__(module, name, value.astype(dtype))
        return self

    # ------------------------------------------------------------ state dict
    def state_dict(self):
        """{name: ndarray copy} of every parameter and buffer, PyTorch names and order."""
        state = OrderedDict()
        for module_name, module in self.named_modules():
            for name, parameter in module._parameters.items():
                state[f"{module_name}.{name}" if module_name else name] = \
                    module._export_state(name, parameter.data.copy())
            for name in module._buffers:
                state[f"{module_name}.{name}" if module_name else name] = np.array(getattr(module, name))
        return state

    def _export_state(self, name, value):
        """Hook for a module to write a parameter in its conventional stored shape (SE: 1x1 conv)."""
        return value

    def _adapt_loaded(self, name, value, expected_shape):
        """Hook for a module to accept an equivalent stored shape (e.g. SE's 1x1-conv weights)."""
        return value

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays into parameters and buffers, after checking every key and shape.

        With ``strict=True`` any missing key, unexpected key or shape mismatch raises
        one ``ValueError`` that counts each kind and shows the first few, with a hint
        where the pattern is recognisable (``nn/load_report.py``).
        Values are cast to the dtype the module already has.
        """
        targets = {}
        for module_name, module in self.named_modules():
            for name in list(module._parameters) + list(module._buffers):
                targets[f"{module_name}.{name}" if module_name else name] = (module, name)
        missing = [key for key in targets if key not in state_dict]
        unexpected = [key for key in state_dict if key not in targets]
        mismatched, updates = [], []
        for key, (module, name) in targets.items():
            if key not in state_dict:
                continue
            current = getattr(module, name)
            current_array = current.data if isinstance(current, Parameter) else np.asarray(current)
            value = module._adapt_loaded(name, np.asarray(state_dict[key]), current_array.shape)
            if value.shape != current_array.shape:
                mismatched.append((key, current_array.shape, value.shape))
            else:
                updates.append((module, name, current, value, current_array.dtype))
        if mismatched or (strict and (missing or unexpected)):
            raise ValueError(format_load_problems(type(self).__name__, missing, unexpected,
                                                  mismatched))
        for module, name, current, value, dtype in updates:
            value = np.array(value, dtype=dtype)     # one copy per array, made only now, so a
            if isinstance(current, Parameter):       # large model never holds two copies at once
                current.data = value
            else:
                object.__setattr__(module, name, value)
        return {"missing_keys": missing, "unexpected_keys": unexpected}

    # ------------------------------------------------------------ printing
    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, child in self._modules.items():
            child_text = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child_text}")
        return lines[0] + ")" if len(lines) == 1 else "\n".join(lines) + "\n)"


def _require_cache(module):
    """Raise a clear error when backward is called without a forward first."""
    if module._cache is None:
        raise RuntimeError(f"{type(module).__name__}.backward called before forward "
                           "(no cached forward values)")
    return module._cache
