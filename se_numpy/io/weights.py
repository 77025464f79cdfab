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
from contextlib import contextmanager

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


def _checked(path):
    """The suffix of an existing weights file; the errors of ``load_weights`` otherwise."""
    suffix = _check_suffix(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such weights file")
    return suffix


@contextmanager
def _readable(path, suffix):
    """Turn what the readers raise on a damaged file into one clear ``ValueError``."""
    try:
        yield
    except (OSError, ValueError, EOFError) as error:       # includes zipfile.BadZipFile
        raise ValueError(f"{path}: not a readable {suffix} weights file ({error})") from None
    except Exception as error:                              # safetensors' own error type
        if type(error).__name__ == "SafetensorError":
            raise ValueError(f"{path}: not a readable {suffix} weights file ({error})") from None
        raise


def load_weights(path):
    """{name: ndarray} from a ``.safetensors`` or ``.npz`` file, in the file's order.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for a
    pickle, an unknown suffix or a file that is not what its suffix says.
    """
    arrays = OrderedDict()
    for some in read_weights(path, stored_shapes(path)):
        arrays.update(some)
    return arrays


def stored_shapes(path):
    """{name: shape} of a weights file, in the file's order, from its header alone.

    Reads no array: a model can be checked against a file before any of its
    (possibly hundreds of MB of) arrays is read. Errors as ``load_weights``.
    """
    suffix = _checked(path)
    with _readable(path, suffix):
        if suffix == ".safetensors":
            from safetensors import safe_open
            with safe_open(os.fspath(path), framework="numpy") as stored:
                return OrderedDict((name, tuple(stored.get_slice(name).get_shape()))
                                   for name in stored.keys())
        with np.load(path, allow_pickle=False) as archive:
            return OrderedDict((name, _npy_shape(archive.zip, name)) for name in archive.files)


def _npy_shape(archive, name):
    """The shape in the header of member ``name`` of an ``.npz`` zip, without its data."""
    with archive.open(f"{name}.npy") as member:
        version = np.lib.format.read_magic(member)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, _, _ = read_header(member)
    return tuple(shape)


BYTES_PER_STEP = 16 * 2**20


def read_weights(path, shapes, bytes_per_step=BYTES_PER_STEP):
    """Yield the arrays of ``shapes`` ({name: shape}, as ``stored_shapes`` gives) a few at a time.

    Each dict holds arrays of about ``bytes_per_step`` together (at least one,
    counted at 8 bytes per element). A caller that puts each dict where it
    belongs before asking for the next (``models.create(..., weights=)``)
    holds only that much of the file at a time. For safetensors the file is
    reopened at every step: ``load_file`` would hold the file's bytes and the
    arrays at once, and one ``safe_open`` for the whole file keeps every page
    it has touched mapped until it closes, so a large model (SENet-154:
    460 MB) would occupy twice its size. Errors as ``load_weights``.
    """
    suffix = _checked(path)
    for step in _steps(shapes, bytes_per_step):
        with _readable(path, suffix):
            if suffix == ".safetensors":
                from safetensors import safe_open
                with safe_open(os.fspath(path), framework="numpy") as stored:
                    arrays = OrderedDict((name, stored.get_tensor(name)) for name in step)
            else:
                with np.load(path, allow_pickle=False) as archive:
                    arrays = OrderedDict((name, archive[name]) for name in step)
        yield arrays


def _steps(shapes, bytes_per_step):
    """The names of ``shapes`` in order, cut into runs of about ``bytes_per_step`` each."""
    step, size = [], 0
    for name, shape in shapes.items():
        nbytes = 8 * int(np.prod(shape))
        if step and size + nbytes > bytes_per_step:
            yield step
            step, size = [], 0
        step.append(name)
        size += nbytes
    if step:
        yield step


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
