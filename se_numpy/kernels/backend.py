"""Which kernel module runs the hot loops: ``numpy`` (reference), ``numba`` (CPU) or ``cuda``.

Every backend package exposes the same functions with the same signatures
(``contract.py`` lists them; ``numpy/`` holds their math). ``functional/`` calls
``current()`` and never imports a backend directly, so switching is one line::

    sn.use_backend("numba")            # plain call: switch for the rest of the run
    with sn.use_backend("numba"):      # context manager: switch, then restore
        ...

The environment variable ``SE_NUMPY_BACKEND`` sets the starting backend.
"""
import importlib
import os

# backend name -> module that implements it (imported on first selection, so a
# CPU-only install never imports numba.cuda)
_MODULES = {"numpy": "se_numpy.kernels.numpy",
            "numba": "se_numpy.kernels.numba",
            "cuda": "se_numpy.kernels.cuda"}

_state = {"name": None, "module": None}


def available_backends():
    """Names ``use_backend`` accepts (whether they can run here is checked on selection)."""
    return tuple(_MODULES)


def load_backend(name):
    """The kernel package of backend ``name``, imported and checked (without selecting it)."""
    if name not in _MODULES:
        raise ValueError(f"unknown backend {name!r}: expected one of {', '.join(_MODULES)}")
    try:
        module = importlib.import_module(_MODULES[name])
    except ImportError as error:
        raise RuntimeError(f"backend {name!r} cannot be used here: {error}") from error
    check = getattr(module, "check_available", None)
    if check is not None:
        check()   # raises RuntimeError with the reason (e.g. no GPU and no simulator)
    return module


def _set(name):
    module = load_backend(name)
    _state["name"], _state["module"] = name, module


def current():
    """The active kernel module."""
    if _state["module"] is None:
        _set(os.environ.get("SE_NUMPY_BACKEND", "numpy").strip().lower() or "numpy")
    return _state["module"]


def get_backend():
    """Name of the active backend."""
    current()
    return _state["name"]


class use_backend:
    """Select a backend; as a context manager, restore the previous one on exit."""

    def __init__(self, name):
        self._previous = get_backend()
        _set(str(name).strip().lower())

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        _set(self._previous)
        return False

    def __repr__(self):
        return f"use_backend({get_backend()!r})"
