"""Name -> builder table behind ``sn.models.create(name, **options)`` and ``names()``."""
import numpy as np

_BUILDERS = {}


def register(name, builder, description=""):
    """Make ``create(name, **options)`` call ``builder(**options)``."""
    if name in _BUILDERS:
        raise ValueError(f"model name {name!r} is registered twice")
    _BUILDERS[name] = (builder, description)


def names():
    """Every registered model name, sorted."""
    return sorted(_BUILDERS)


def describe(name):
    """One-line description of a registered model."""
    return _lookup(name)[1]


def _lookup(name):
    if name not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}: expected one of {', '.join(names())}")
    return _BUILDERS[name]


# timm's keyword spellings -> se_numpy's, where they mean the same thing
TIMM_KEYWORDS = {"in_chans": "in_channels"}


def create(name, weights=None, pretrained=False, **options):
    """Build a registered model, e.g. ``create("se_resnet20", num_classes=10, seed=0)``.

    Every model takes ``in_channels``, ``num_classes``, ``dtype`` and ``seed``;
    SE models also take ``reduction``, ``placement``, ``se_bias``, ``squeeze``
    and ``gate`` (see ``se_numpy.models.se_config``). ImageNet models take
    ``drop_rate`` and ``num_classes=0`` (pooled features) as timm does, and
    timm's ``in_chans`` means ``in_channels``.

    ``weights``: a ``.safetensors`` or ``.npz`` file loaded strictly after the
    model is built (``sn.io.load_weights``); its arrays are cast to ``dtype``.
    ``pretrained=True`` is refused: nothing is downloaded, pass ``weights=``.
    """
    if not isinstance(name, str):
        raise TypeError(f"name: expected a model name (str), got {type(name).__name__}")
    if pretrained:
        raise ValueError(f"pretrained=True: se_numpy downloads nothing; download the "
                         f"weights file (e.g. {name}'s model.safetensors from the Hugging Face "
                         f"hub) and pass create({name!r}, weights=PATH)")
    for timm_name, own_name in TIMM_KEYWORDS.items():
        if timm_name in options:
            if own_name in options:
                raise TypeError(f"{name}: got both {timm_name} and {own_name}")
            options[own_name] = options.pop(timm_name)
    builder, _ = _lookup(name)
    model = builder(**options)
    if weights is not None:
        _load_weights_into(model, name, weights)
    return model


def _load_weights_into(model, name, path):
    """Load a weights file into ``model`` strictly, holding only a few of its arrays at a time.

    ``model.load_state_dict(load_weights(path))`` would hold the model and the
    whole file at once (SENet-154: 2 x 460 MB). Instead every name and shape of
    the file is checked first by ``load_state_dict`` itself (its rules, its
    errors) on stand-ins that hold no memory: zero-stride views of one zero of
    each stored shape. A file that does not fit changes nothing; one that fits
    leaves zeros in the model, which the real arrays then replace, read 16 MB at
    a time (``io.read_weights``), so the peak is one model plus those few arrays.
    """
    from ..io.weights import read_weights, stored_shapes
    shapes = stored_shapes(path)
    stand_ins = {key: np.broadcast_to(np.zeros((), np.float32), shape)
                 for key, shape in shapes.items()}
    try:
        model.load_state_dict(stand_ins)
    except ValueError as error:
        raise ValueError(f"{path}: does not fit {name}: {error}") from None
    for arrays in read_weights(path, shapes):
        model.load_state_dict(arrays, strict=False)
