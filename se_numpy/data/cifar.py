"""CIFAR-10 and CIFAR-100, read from the "python version" batch files, without trusting them.

The official archives (https://www.cs.toronto.edu/~kriz/cifar.html) unpack to

    cifar-10-batches-py/   data_batch_1 .. data_batch_5, test_batch, batches.meta
    cifar-100-python/      train, test, meta

Each file is a pickled dict (written by Python 2) with
``b'data'``: uint8 array (N, 3072) — 1024 red, then 1024 green, then 1024 blue
values per row, each plane row-major 32 x 32 — and ``b'labels'`` (CIFAR-10) or
``b'fine_labels'`` (CIFAR-100): a list of N ints.

A pickle can run arbitrary code while loading (its REDUCE opcode calls any
importable function, e.g. ``os.system``), and even NumPy's own array
rebuilding functions can be abused to read outside a buffer. The files are
therefore read by ``pickle_reader.read_restricted_pickle``, a stack machine
that calls nothing and builds only plain containers and checked numpy
arrays, within limits proportional to the file (see that module).
"""
import os

import numpy as np

from .dataset import ImageDataset, check_label_range
from .pickle_reader import PickleRefused, read_restricted_pickle

CIFAR10_CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer",
                       "dog", "frog", "horse", "ship", "truck")
CIFAR_IMAGE_SHAPE = (3, 32, 32)
MAX_CLASS_NAME = 64          # characters of one class name in CIFAR-100's meta


def safe_load_pickle(path):
    """Read ``path`` with the restricted pickle reader; a refusal is a ``ValueError`` naming it."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"CIFAR file not found: {path}")
    try:
        return read_restricted_pickle(path)
    except PickleRefused as error:
        raise ValueError(f"{path}: not a valid CIFAR file: {error}") from None


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
        found = ", ".join(repr(key)[:40] for key in list(batch)[:10])
        raise ValueError(f"{path}: missing key {error.args[0]!r} (found keys {found}"
                         + (", ..." if len(batch) > 10 else "") + ")") from None
    row_length = int(np.prod(CIFAR_IMAGE_SHAPE))
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != row_length:
        raise ValueError(f"{path}: 'data' must be a uint8 array of shape (N, {row_length}), got "
                         f"{getattr(data, 'dtype', type(data).__name__)} with shape "
                         f"{getattr(data, 'shape', None)}")
    if data.shape[0] == 0:
        raise ValueError(f"{path}: holds no images")
    labels = _labels_array(labels, path, label_key)
    if labels.shape[0] != data.shape[0]:
        raise ValueError(f"{path}: {data.shape[0]} images but {labels.shape[0]} labels")
    check_label_range(labels, num_classes, f"{path}: {label_key}")
    return data.reshape(-1, *CIFAR_IMAGE_SHAPE), labels


def _labels_array(labels, path, label_key):
    """A list of ints or a 1-d integer array (re-pickled copies) -> int64 (N,)."""
    if isinstance(labels, np.ndarray):
        if labels.ndim != 1 or labels.dtype.kind not in "iu":
            raise ValueError(f"{path}: {label_key!r} must be a 1-d integer array, got "
                             f"{labels.dtype} with shape {labels.shape}")
        # uint64 values past int64 wrap to negatives, which the range check refuses
        return labels.astype(np.int64)
    if not isinstance(labels, list) or \
            not all(type(label) is int for label in labels):
        raise ValueError(f"{path}: {label_key!r} must be a list of ints")
    if labels and not all(-2**63 <= label < 2**63 for label in labels):
        raise ValueError(f"{path}: {label_key!r} holds integers outside int64")
    return np.array(labels, dtype=np.int64)


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
        class_names = _read_class_names(meta_path)
    return ImageDataset("cifar100", *train, *test, class_names)


def _read_class_names(meta_path):
    """CIFAR-100's ``meta``: 100 short ``fine_label_names`` (they go into every checkpoint)."""
    meta = safe_load_pickle(meta_path)
    try:
        names = _get(meta, "fine_label_names")
    except (KeyError, TypeError):
        raise ValueError(f"{meta_path}: expected a dict with 'fine_label_names'") from None
    if not isinstance(names, list) or len(names) != 100:
        raise ValueError(f"{meta_path}: expected a list of 100 fine_label_names, got "
                         f"{type(names).__name__} of {len(names) if hasattr(names, '__len__') else 0}")
    decoded = []
    for index, name in enumerate(names):
        text = name.decode("latin-1") if isinstance(name, bytes) else name
        if not isinstance(text, str) or not 0 < len(text) <= MAX_CLASS_NAME \
                or not text.isprintable():
            raise ValueError(f"{meta_path}: fine_label_names[{index}] must be a printable "
                             f"string of 1 to {MAX_CLASS_NAME} characters")
        decoded.append(text)
    return tuple(decoded)
