"""Run a timm attention module and its se_numpy twin on the same input, in float64.

Imported by the optional tests ``test_gather_excite_timm.py`` and
``test_selective_kernel_timm.py`` (never by CI's own tests, which have no torch).
timm's module is randomly initialised, its BatchNorm statistics randomised
(``timm_reference.randomise_batch_norm``, then put back in train mode when asked);
its state_dict is loaded strictly into se_numpy; both run forward and backward with
the same upstream gradient. The errors are max |ours − timm| / max |timm| per tensor.
"""
import numpy as np

from timm_reference import randomise_batch_norm


def _relative(ours, reference):
    scale = float(np.abs(reference).max())
    return float(np.abs(ours - reference).max() / (scale if scale > 0 else 1.0))


def compare(timm_module, ours, x_shape, train=True, seed=0):
    """{"y": error, "dx": error, parameter name: error of its gradient, state name: error}."""
    import torch
    torch.manual_seed(seed)
    timm_module = randomise_batch_norm(timm_module.double(), seed).train(train)
    ours = ours.astype(np.float64).train(train)
    ours.load_state_dict({k: v.detach().numpy() for k, v in timm_module.state_dict().items()})
    x = torch.randn(*x_shape, dtype=torch.float64, requires_grad=True)
    y = timm_module(x)
    dy = torch.randn_like(y)
    y.backward(dy)
    errors = {"y": _relative(ours(x.detach().numpy()), y.detach().numpy())}
    errors["dx"] = _relative(ours.backward(dy.numpy()), x.grad.numpy())
    reference = dict(timm_module.named_parameters())
    assert set(reference) == {name for name, _ in ours.named_parameters()}
    for name, parameter in ours.named_parameters():
        expected = reference[name].grad.numpy()
        errors[f"d {name}"] = _relative(parameter.grad.reshape(expected.shape), expected)
    # running statistics after the training step (BatchNorm's momentum update)
    timm_state = timm_module.state_dict()
    for name, value in ours.state_dict().items():
        if "running" in name:
            errors[name] = _relative(value, timm_state[name].numpy())
    return errors
