"""Compare se_numpy's zoo with timm, both directions (needs torch and timm; imported by the
optional tests and by ``scripts/compare_timm.py``, never by CI's own tests).

    timm -> se_numpy   timm's state_dict (random weights, randomised BatchNorm
                       statistics, see ``randomise_batch_norm``) converted to NumPy,
                       written as safetensors,
                       loaded strictly by ``sn.models.create(name, weights=...)``
    se_numpy -> timm   se_numpy's state_dict() loaded strictly by timm

and the logits of both on the same random images, in float32 and float64.
The error is max |ours − timm| / max |timm| over the whole batch of logits.
"""
import os
import tempfile

import numpy as np

import se_numpy as sn

INPUT_SIZE = 100       # odd sizes further down exercise ceil-mode pooling (50 -> 25 -> 13 ...)


def randomise_batch_norm(torch_model, seed=0):
    """Give every BatchNorm random γ ~ U(0.25, 0.5), β ~ N(0, 0.1²), running mean ~ N(0, 0.1²)
    and running variance ~ U(0.75, 1.25) (timm zero-initialises some γ, which would hide them).

    Why γ below 1: with γ near 1 the activations grow through a deep residual
    stack until the logits are ill-conditioned, and the comparison measures
    float32 rounding rather than agreement (SE-ResNet-101 with γ ~ U(0.75, 1.25):
    timm's own float32 logits are 1.7e-5 from its float64 ones; with these γ, 1.6e-7).
    """
    import torch
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in torch_model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                shape = module.running_mean.shape
                module.weight.copy_(torch.rand(shape, generator=generator) * 0.25 + 0.25)
                module.bias.copy_(torch.randn(shape, generator=generator) * 0.1)
                module.running_mean.copy_(torch.randn(shape, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(shape, generator=generator) * 0.5 + 0.75)
    return torch_model.eval()


def _relative_error(ours, reference):
    return float(np.abs(ours - reference).max() / np.abs(reference).max())


def timm_to_se_numpy(name, dtype, input_size=INPUT_SIZE, batch=2, seed=0):
    """(relative logit error, parameter count) after loading timm's weights into se_numpy."""
    import timm
    import torch
    torch.manual_seed(seed)
    images = np.random.default_rng(seed).standard_normal((batch, 3, input_size, input_size))
    images = images.astype(dtype)
    reference = randomise_batch_norm(timm.create_model(name), seed)
    if dtype == np.float64:
        reference = reference.double()
    state = {key: value.detach().cpu().numpy() for key, value in reference.state_dict().items()}
    with torch.no_grad():
        expected = reference(torch.from_numpy(images)).numpy()
    del reference
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, f"{name}.safetensors")
        sn.io.save_weights(path, state)
        del state
        model = sn.models.create(name, weights=path, dtype=dtype).eval()
    logits = model(images)
    parameters = sn.analysis.count_params(model)
    del model
    return _relative_error(logits, expected), parameters


def se_numpy_to_timm(name, dtype=np.float64, input_size=INPUT_SIZE, batch=2, seed=0):
    """Relative logit error after loading se_numpy's state_dict() strictly into timm."""
    import timm
    import torch
    model = sn.models.create(name, dtype=dtype, seed=seed).eval()
    # random BatchNorm statistics here too, so eval-mode BN is not the identity
    rng = np.random.default_rng(seed)
    for module in model.modules():
        if isinstance(module, sn.nn.BatchNorm2d):
            size = module.num_features
            module.weight.data[...] = rng.uniform(0.25, 0.5, size)
            module.bias.data[...] = rng.normal(0, 0.1, size)
            module.running_mean[...] = rng.normal(0, 0.1, size)
            module.running_var[...] = rng.uniform(0.75, 1.25, size)
    images = rng.standard_normal((batch, 3, input_size, input_size)).astype(dtype)
    logits = model(images)
    state = {key: torch.from_numpy(np.ascontiguousarray(value))
             for key, value in model.state_dict().items()}
    del model
    reference = timm.create_model(name)
    if dtype == np.float64:
        reference = reference.double()
    reference.load_state_dict(state, strict=True)
    with torch.no_grad():
        expected = reference.eval()(torch.from_numpy(images)).numpy()
    return _relative_error(logits, expected)
