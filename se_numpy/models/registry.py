"""Name -> builder table behind ``sn.models.create(name, **options)`` and ``names()``."""

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


def create(name, **options):
    """Build a registered model, e.g. ``create("se_resnet20", num_classes=10, seed=0)``.

    Every model takes ``in_channels``, ``num_classes``, ``dtype`` and ``seed``;
    SE models also take ``reduction``, ``placement``, ``se_bias``, ``squeeze``
    and ``gate`` (see ``se_numpy.models.se_config``).
    """
    if not isinstance(name, str):
        raise TypeError(f"name: expected a model name (str), got {type(name).__name__}")
    builder, _ = _lookup(name)
    return builder(**options)
