"""Read and write state dicts as ``.safetensors`` or ``.npz`` files.

safetensors (through the ``safetensors`` package's NumPy API) is a flat table
of named arrays with a JSON header: loading it runs no code, which is why the
model hubs serve it. ``.npz`` is NumPy's own zip of ``.npy`` arrays, read with
``allow_pickle=False``. PyTorch's ``.pth``/``.pt``/``.bin`` files are Python
pickles: opening one can execute arbitrary code and needs torch, so they are
refused with the one torch call that converts them.

Writes are atomic: the file is written next to its destination under a
temporary name and renamed into place, so an interrupted save never leaves a
half-written file under the real name.
"""
import os
from collections import OrderedDict

import numpy as np

from ..atomic import atomic_write, atomic_write_named

SUFFIXES = (".safetensors", ".npz")
PICKLE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".pkl")


def _suffix(path):
    return os.path.splitext(os.fspath(path))[1].lower()


def _refuse_pickle(path):
    stem = os.path.splitext(os.fspath(path))[0]
    raise ValueError(
        f"{path}: PyTorch pickle files are not read (loading one can run arbitrary code, and it "
        f"needs torch); convert it once where torch is installed: python -c \"import torch, "
        f"safetensors.torch as s; s.save_file({{k: v.contiguous() for k, v in torch.load("
        f"'{path}', map_location='cpu', weights_only=True).items()}}, '{stem}.safetensors')\"")


def _check_suffix(path):
    suffix = _suffix(path)
    if suffix in PICKLE_SUFFIXES:
        _refuse_pickle(path)
    if suffix not in SUFFIXES:
        raise ValueError(f"{path}: expected a file ending in {' or '.join(SUFFIXES)}, "
                         f"got {suffix or 'no suffix'!r}")
    return suffix


def load_weights(path):
    """{name: ndarray} from a ``.safetensors`` or ``.npz`` file, in the file's order.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for a
    pickle, an unknown suffix or a file that is not what its suffix says.
    """
    suffix = _check_suffix(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such weights file")
    try:
        if suffix == ".safetensors":
            return _load_safetensors(os.fspath(path))
        with np.load(path, allow_pickle=False) as archive:
            return OrderedDict((name, archive[name]) for name in archive.files)
    except (OSError, ValueError, EOFError) as error:       # includes zipfile.BadZipFile
        raise ValueError(f"{path}: not a readable {suffix} weights file ({error})") from None
    except Exception as error:                              # safetensors' own error type
        if type(error).__name__ == "SafetensorError":
            raise ValueError(f"{path}: not a readable {suffix} weights file ({error})") from None
        raise


KEYS_PER_OPENING = 64


def _load_safetensors(path):
    """The arrays of a safetensors file, copied out of its memory map a few at a time.

    ``load_file`` would hold the file's bytes and the arrays at once, and one
    ``safe_open`` for the whole file keeps every page it has touched mapped
    until it closes: either way a large model (SENet-154: 460 MB) would occupy
    twice its size. Reopening the map every few arrays keeps only the arrays.
    """
    from safetensors import safe_open
    with safe_open(path, framework="numpy") as stored:
        names = list(stored.keys())
    arrays = OrderedDict()
    for start in range(0, len(names), KEYS_PER_OPENING):
        with safe_open(path, framework="numpy") as stored:
            for name in names[start:start + KEYS_PER_OPENING]:
                arrays[name] = stored.get_tensor(name)
    return arrays


def _check_state(state_dict):
    if not hasattr(state_dict, "items"):
        raise TypeError(f"state_dict: expected a mapping of names to arrays, "
                        f"got {type(state_dict).__name__}")
    arrays = OrderedDict()
    for name, value in state_dict.items():
        if not isinstance(name, str):
            raise TypeError(f"state_dict: expected str keys, got {name!r}")
        array = np.asarray(value)
        if array.dtype.kind not in "biuf":
            raise TypeError(f"state_dict[{name!r}]: expected a numeric array, got dtype "
                            f"{array.dtype}")
        # (np.ascontiguousarray would turn a 0-d num_batches_tracked into shape (1,))
        arrays[name] = array if array.flags.c_contiguous else array.copy(order="C")
    return arrays


def save_weights(path, state_dict):
    """Write ``state_dict`` ({name: array}) to ``path`` (.safetensors or .npz), atomically."""
    suffix = _check_suffix(path)
    arrays = _check_state(state_dict)
    if suffix == ".safetensors":
        from safetensors.numpy import save_file
        atomic_write_named(path, lambda temporary: save_file(dict(arrays), temporary))
    else:
        atomic_write(path, lambda stream: np.savez(stream, **arrays))
    return os.fspath(path)
