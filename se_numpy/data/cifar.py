"""CIFAR-10 and CIFAR-100, read from the "python version" batch files, without trusting them.

The official archives (https://www.cs.toronto.edu/~kriz/cifar.html) unpack to

    cifar-10-batches-py/   data_batch_1 .. data_batch_5, test_batch, batches.meta
    cifar-100-python/      train, test, meta

Each file is a pickled dict (written by Python 2) with
``b'data'``: uint8 array (N, 3072) — 1024 red, then 1024 green, then 1024 blue
values per row, each plane row-major 32 x 32 — and ``b'labels'`` (CIFAR-10) or
``b'fine_labels'`` (CIFAR-100): a list of N ints.

A pickle can run arbitrary code while loading (its REDUCE opcode calls any
importable function, e.g. ``os.system``). ``SafeUnpickler`` therefore resolves
only the few globals these files actually contain — numpy's array rebuilding
helpers — and refuses every other name, so a tampered file fails with a
``ValueError`` instead of executing anything.
"""
import os
import pickle

import numpy as np

from .dataset import ImageDataset, check_label_range

CIFAR10_CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer",
                       "dog", "frog", "horse", "ship", "truck")
CIFAR_IMAGE_SHAPE = (3, 32, 32)


def _numpy_reconstruct():
    # numpy 2 moved numpy.core to numpy._core; the function is the same either way
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:                                   # numpy < 2
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds dicts, lists, bytes, str, ints and numpy arrays, nothing else.

    The CIFAR batches reference exactly three globals, all needed to rebuild a
    numpy array pickled with protocol 2: ``numpy.core.multiarray._reconstruct``
    (called as ``_reconstruct(numpy.ndarray, (0,), b'b')`` to make an empty
    array whose state is then set), ``numpy.ndarray`` and ``numpy.dtype``. Plain
    containers and scalars need no globals at all. Anything else (``os.system``,
    ``builtins.eval``, ``subprocess.Popen`` ...) raises ``pickle.UnpicklingError``.
    """

    # (module, name) as written in the file -> the object it may resolve to
    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct(),
        ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct(),
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def find_class(self, module, name):
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: a CIFAR batch only contains "
                "dicts, lists, bytes, strings, ints and numpy arrays") from None


def safe_load_pickle(path):
    """Unpickle ``path`` with ``SafeUnpickler``; a failure is a ``ValueError`` naming the file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"CIFAR file not found: {path}")
    try:
        with open(path, "rb") as handle:
            # encoding="bytes": the files were written by Python 2, whose str is our bytes
            return SafeUnpickler(handle, encoding="bytes").load()
    except pickle.UnpicklingError as error:
        raise ValueError(f"{path}: not a valid CIFAR batch: {error}") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            MemoryError, OverflowError) as error:
        raise ValueError(f"{path}: not a valid CIFAR batch (truncated or corrupt pickle: "
                         f"{type(error).__name__}: {error})") from None


def _get(batch, key):
    """Look a key up as bytes (Python 2 pickles) or str (re-pickled copies)."""
    for candidate in (key.encode(), key):
        if candidate in batch:
            return batch[candidate]
    raise KeyError(key)


def read_cifar_batch(path, label_key, num_classes):
    """One batch file -> (uint8 images (N, 3, 32, 32), int64 labels (N,)), validated."""
    batch = safe_load_pickle(path)
    if not isinstance(batch, dict):
        raise ValueError(f"{path}: expected a pickled dict, got {type(batch).__name__}")
    try:
        data = _get(batch, "data")
        labels = _get(batch, label_key)
    except KeyError as error:
        raise ValueError(f"{path}: missing key {error.args[0]!r} "
                         f"(found keys {sorted(map(str, batch))})") from None
    row_length = int(np.prod(CIFAR_IMAGE_SHAPE))
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != row_length:
        raise ValueError(f"{path}: 'data' must be a uint8 array of shape (N, {row_length}), got "
                         f"{getattr(data, 'dtype', type(data).__name__)} with shape "
                         f"{getattr(data, 'shape', None)}")
    if not isinstance(labels, (list, tuple, np.ndarray)) or \
            not all(isinstance(label, (int, np.integer)) for label in labels):
        raise ValueError(f"{path}: {label_key!r} must be a list of ints")
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if labels.shape[0] != data.shape[0]:
        raise ValueError(f"{path}: {data.shape[0]} images but {labels.shape[0]} labels")
    check_label_range(labels, num_classes, f"{path} {label_key}")
    return data.reshape(-1, *CIFAR_IMAGE_SHAPE), labels


def _read_files(directory, names, label_key, num_classes):
    parts = [read_cifar_batch(os.path.join(directory, name), label_key, num_classes)
             for name in names]
    return (np.concatenate([images for images, _ in parts]),
            np.concatenate([labels for _, labels in parts]))


def _check_directory(directory, what):
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{what} directory not found: {directory}")


def load_cifar10(directory):
    """CIFAR-10 from ``directory``: data_batch_1..5 and test_batch (50 000 / 10 000 images)."""
    _check_directory(directory, "CIFAR-10")
    train = _read_files(directory, [f"data_batch_{i}" for i in range(1, 6)], "labels", 10)
    test = _read_files(directory, ["test_batch"], "labels", 10)
    return ImageDataset("cifar10", *train, *test, CIFAR10_CLASS_NAMES)


def load_cifar100(directory):
    """CIFAR-100 (fine labels, 100 classes) from ``directory``: train, test, optional meta."""
    _check_directory(directory, "CIFAR-100")
    train = _read_files(directory, ["train"], "fine_labels", 100)
    test = _read_files(directory, ["test"], "fine_labels", 100)
    class_names = tuple(f"class_{i}" for i in range(100))
    meta_path = os.path.join(directory, "meta")
    if os.path.isfile(meta_path):
        meta = safe_load_pickle(meta_path)
        try:
            names = _get(meta, "fine_label_names")
        except (KeyError, TypeError):
            raise ValueError(f"{meta_path}: expected a dict with 'fine_label_names'") from None
        if len(names) != 100:
            raise ValueError(f"{meta_path}: expected 100 fine_label_names, got {len(names)}")
        class_names = tuple(name.decode() if isinstance(name, bytes) else str(name)
                            for name in names)
    return ImageDataset("cifar100", *train, *test, class_names)
