"""``param_groups``: exempt BatchNorm and bias parameters from weight decay.

Weight decay pulls weights towards 0 to limit the scale of a layer's
response. A BatchNorm scale γ, a BatchNorm shift β or a bias has no such
role (BatchNorm re-normalises anyway), and decaying them only shrinks the
network's output range, so many recipes leave them undecayed. These are
exactly the 1-d parameters of the networks here (conv and linear weights
have 2 or 4 dimensions), which is the test used.
"""


def param_groups(model, weight_decay, no_decay_bn_bias=True):
    """Two SGD parameter groups: decayed weights and (if ``no_decay_bn_bias``) undecayed 1-d ones.

    Returns ``[{"name": "decay", "params": [...], "weight_decay": weight_decay},
               {"name": "no_decay", "params": [...], "weight_decay": 0.0}]``
    (a group with no parameters is left out), ready for ``SGD(groups, lr=...)``.
    """
    decay, no_decay = [], []
    for _, parameter in model.named_parameters():
        if no_decay_bn_bias and parameter.data.ndim <= 1:
            no_decay.append(parameter)
        else:
            decay.append(parameter)
    groups = [{"name": "decay", "params": decay, "weight_decay": float(weight_decay)},
              {"name": "no_decay", "params": no_decay, "weight_decay": 0.0}]
    return [group for group in groups if group["params"]]
