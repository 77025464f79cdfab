"""Stochastic gradient descent with momentum, exactly PyTorch's ``torch.optim.SGD`` update.

For every parameter p with gradient g, at step t (t = 1, 2, ...):

    d_p = g + weight_decay · p                      (L2 penalty ½·wd·‖p‖², its gradient wd·p)
    buf = d_p                                        if t == 1
    buf = momentum · buf + (1 − dampening) · d_p     if t > 1
    d_p = d_p + momentum · buf                       if nesterov
    d_p = buf                                        otherwise (momentum > 0)
    p   = p − lr · d_p

The first step sets ``buf = d_p`` without dampening, as PyTorch does. The SE
paper trains with SGD, momentum 0.9 (Sec. 6.1 / Appendix); the CIFAR recipe of
ResNet uses weight decay 1e-4 – 5e-4.

Parameters are grouped as in PyTorch: ``params`` is a list of ``Parameter`` or a
list of dicts ``{"params": [...], "weight_decay": ..., ...}`` whose missing keys
take the constructor's values (see ``param_groups`` to exempt BatchNorm and
biases from weight decay).
"""
import numpy as np

from ..nn.parameter import Parameter

_HYPERPARAMETERS = ("lr", "momentum", "dampening", "weight_decay", "nesterov")


class SGD:
    """SGD with (Nesterov) momentum and L2 weight decay.

    ``step()`` updates ``p.data`` in place from ``p.grad``; ``zero_grad()``
    clears the gradients; ``state_dict()`` returns only arrays (an npz file can
    hold them without pickle).
    """

    def __init__(self, params, lr=0.1, momentum=0.9, nesterov=False, weight_decay=5e-4,
                 dampening=0.0):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov)
        params = list(params)
        if not params:
            raise ValueError("SGD: got an empty parameter list")
        if not isinstance(params[0], dict):
            params = [{"params": params}]
        self.param_groups = []
        for group in params:
            unknown = set(group) - set(_HYPERPARAMETERS) - {"params", "initial_lr", "name"}
            if unknown:
                raise ValueError(f"SGD: unknown keys in a parameter group: {sorted(unknown)}")
            filled = {**defaults, **group, "params": list(group["params"])}
            for parameter in filled["params"]:
                if not isinstance(parameter, Parameter):
                    raise TypeError(f"SGD: expected Parameter objects, "
                                    f"got {type(parameter).__name__}")
            _check_hyperparameters(filled)
            # the learning rate the schedules scale (lr = initial_lr · factor(step))
            filled.setdefault("initial_lr", filled["lr"])
            self.param_groups.append(filled)
        # momentum buffer of each parameter, by its position in the groups; None until step 1
        self.momentum_buffers = [None] * sum(len(g["params"]) for g in self.param_groups)
        self.step_count = 0

    def _indexed_parameters(self):
        index = 0
        for group in self.param_groups:
            for parameter in group["params"]:
                yield index, group, parameter
                index += 1

    def step(self):
        """Apply one update to every parameter from its current ``grad``."""
        for index, group, parameter in self._indexed_parameters():
            dtype = parameter.data.dtype.type
            lr, momentum = dtype(group["lr"]), dtype(group["momentum"])
            weight_decay, dampening = dtype(group["weight_decay"]), dtype(group["dampening"])
            direction = parameter.grad
            if weight_decay != 0:
                direction = direction + weight_decay * parameter.data
            if momentum != 0:
                buffer = self.momentum_buffers[index]
                if buffer is None:
                    buffer = direction.copy()
                else:
                    buffer = momentum * buffer + (dtype(1) - dampening) * direction
                self.momentum_buffers[index] = buffer
                direction = direction + momentum * buffer if group["nesterov"] else buffer
            parameter.data = parameter.data - lr * direction
        self.step_count += 1

    def zero_grad(self):
        for _, _, parameter in self._indexed_parameters():
            parameter.zero_grad()

    def set_lr_factor(self, factor):
        """Set every group's lr to ``initial_lr · factor``: a factor, not a learning rate.

        With ``SGD(params, lr=0.15)``, ``set_lr_factor(0.5)`` gives lr = 0.075 and
        ``set_lr_factor(1)`` restores 0.15. A cosine schedule passes
        ½(1 + cos(π t / T)), which runs from 1 to 0. ``param_groups[i]["lr"]`` holds
        the rate now in use.
        """
        factor = float(factor)
        if not (np.isfinite(factor) and factor >= 0):
            raise ValueError(f"set_lr_factor: expected a finite factor >= 0 of the initial "
                             f"learning rate, got {factor}")
        for group in self.param_groups:
            group["lr"] = group["initial_lr"] * factor

    def set_lr(self, factor):
        """The same as ``set_lr_factor`` (lr = initial_lr · factor); the name the schedules call."""
        self.set_lr_factor(factor)

    # ------------------------------------------------------------ checkpoints
    def state_dict(self):
        """{name: ndarray}: momentum buffers, step count and every group's hyperparameters.

        Only arrays, so ``np.savez`` stores it without pickle. A parameter that
        has no buffer yet (before the first step) is simply absent.
        """
        state = {"step_count": np.array(self.step_count, dtype=np.int64)}
        for index, buffer in enumerate(self.momentum_buffers):
            if buffer is not None:
                state[f"momentum_buffer.{index}"] = buffer.copy()
        for group_index, group in enumerate(self.param_groups):
            for key in _HYPERPARAMETERS + ("initial_lr",):
                state[f"group.{group_index}.{key}"] = np.array(group[key])
        return state

    def load_state_dict(self, state):
        """Restore what ``state_dict`` returned; shapes and group count must match."""
        count = len(self.momentum_buffers)
        expected_groups = len(self.param_groups)
        group_keys = [key for key in state if key.startswith("group.")]
        found_groups = len({key.split(".")[1] for key in group_keys})
        if found_groups != expected_groups:
            raise ValueError(f"SGD.load_state_dict: optimiser has {expected_groups} parameter "
                             f"groups, state has {found_groups}")
        buffers = [None] * count
        parameters = [parameter for _, _, parameter in self._indexed_parameters()]
        for key, value in state.items():
            if key.startswith("momentum_buffer."):
                index = int(key.split(".")[1])
                if not 0 <= index < count:
                    raise ValueError(f"SGD.load_state_dict: {key} but only {count} parameters")
                if value.shape != parameters[index].shape:
                    raise ValueError(f"SGD.load_state_dict: {key} has shape {value.shape}, "
                                     f"parameter has {parameters[index].shape}")
                buffers[index] = np.array(value, dtype=parameters[index].dtype)
        for group_index, group in enumerate(self.param_groups):
            for key in _HYPERPARAMETERS + ("initial_lr",):
                value = state[f"group.{group_index}.{key}"]
                group[key] = bool(value) if key == "nesterov" else float(value)
        self.momentum_buffers = buffers
        self.step_count = int(state["step_count"])

    def __repr__(self):
        groups = ", ".join(f"{{{len(g['params'])} params, lr={g['lr']:g}, "
                           f"weight_decay={g['weight_decay']:g}}}" for g in self.param_groups)
        return (f"SGD(momentum={self.param_groups[0]['momentum']}, "
                f"nesterov={self.param_groups[0]['nesterov']}, groups=[{groups}])")


def _check_hyperparameters(group):
    if not group["lr"] >= 0:
        raise ValueError(f"SGD: lr must be >= 0, got {group['lr']}")
    if not group["momentum"] >= 0:
        raise ValueError(f"SGD: momentum must be >= 0, got {group['momentum']}")
    if not group["weight_decay"] >= 0:
        raise ValueError(f"SGD: weight_decay must be >= 0, got {group['weight_decay']}")
    if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
        # the same rule as PyTorch: Nesterov needs momentum and no dampening
        raise ValueError("SGD: nesterov=True requires momentum > 0 and dampening = 0")
