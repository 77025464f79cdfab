"""MNIST and Fashion-MNIST, read from the IDX files (plain or gzipped), checked byte by byte.

IDX layout (http://yann.lecun.com/exdb/mnist/), all integers big-endian:

    bytes 0-1   0x0000
    byte  2     element type (0x08 = unsigned byte)
    byte  3     number of dimensions d (3 for images, 1 for labels)
    4·d bytes   the size of each dimension (uint32)
    then        prod(sizes) elements

so an image file starts with magic 0x00000803 = 2051 and a label file with
0x00000801 = 2049. Both data sets use the same file names:

    train-images-idx3-ubyte  train-labels-idx1-ubyte
    t10k-images-idx3-ubyte   t10k-labels-idx1-ubyte      (each optionally ".gz")
"""
import gzip
import os
import struct

import numpy as np

from .dataset import ImageDataset, check_label_range

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
MNIST_CLASS_NAMES = tuple(str(digit) for digit in range(10))
FASHION_MNIST_CLASS_NAMES = ("t-shirt/top", "trouser", "pullover", "dress", "coat",
                             "sandal", "shirt", "sneaker", "bag", "ankle boot")


def _find_file(directory, stem):
    """``directory/stem`` or ``directory/stem.gz``, whichever exists."""
    for name in (stem, stem + ".gz"):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(f"IDX file not found: {os.path.join(directory, stem)}[.gz]")


def _read_bytes(path):
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as handle:
                return handle.read()
        with open(path, "rb") as handle:
            return handle.read()
    except (OSError, EOFError) as error:   # gzip.BadGzipFile is an OSError
        raise ValueError(f"{path}: cannot read ({type(error).__name__}: {error})") from None


def read_idx(path, expected_magic):
    """Parse one IDX file of unsigned bytes into an ndarray of the shape its header declares."""
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise ValueError(f"{path}: {len(raw)} bytes is too short for an IDX header")
    magic = struct.unpack(">I", raw[:4])[0]
    if magic != expected_magic:
        raise ValueError(f"{path}: wrong magic number {magic} (0x{magic:08x}), "
                         f"expected {expected_magic} (0x{expected_magic:08x})")
    ndim = raw[3]
    header_length = 4 + 4 * ndim
    if len(raw) < header_length:
        raise ValueError(f"{path}: truncated header ({len(raw)} bytes, need {header_length})")
    shape = struct.unpack(f">{ndim}I", raw[4:header_length])
    expected_length = header_length + int(np.prod(shape, dtype=np.int64))
    if len(raw) != expected_length:
        raise ValueError(f"{path}: header declares shape {shape}, i.e. {expected_length} bytes, "
                         f"but the file has {len(raw)} bytes"
                         + (" (truncated)" if len(raw) < expected_length else ""))
    return np.frombuffer(raw, dtype=np.uint8, offset=header_length).reshape(shape)


def read_idx_pair(directory, prefix):
    """Images (N, 1, 28, 28) uint8 and labels (N,) int64 of one split (prefix "train" or "t10k")."""
    images_path = _find_file(directory, f"{prefix}-images-idx3-ubyte")
    labels_path = _find_file(directory, f"{prefix}-labels-idx1-ubyte")
    images = read_idx(images_path, IMAGES_MAGIC)
    labels = read_idx(labels_path, LABELS_MAGIC)
    if images.ndim != 3:
        raise ValueError(f"{images_path}: expected 3 dimensions (N, rows, columns), "
                         f"got shape {images.shape}")
    if labels.ndim != 1:
        raise ValueError(f"{labels_path}: expected 1 dimension (N,), got shape {labels.shape}")
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{images_path} has {images.shape[0]} images but {labels_path} has "
                         f"{labels.shape[0]} labels")
    check_label_range(labels, 10, labels_path)
    return images[:, None, :, :].copy(), labels.astype(np.int64)


def _load(directory, name, class_names):
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{name} directory not found: {directory}")
    train = read_idx_pair(directory, "train")
    test = read_idx_pair(directory, "t10k")
    return ImageDataset(name, *train, *test, class_names)


def load_mnist(directory):
    """MNIST digits: 60 000 train and 10 000 test images, 1 x 28 x 28."""
    return _load(directory, "mnist", MNIST_CLASS_NAMES)


def load_fashion_mnist(directory):
    """Fashion-MNIST: same format and sizes as MNIST, ten kinds of clothing."""
    return _load(directory, "fashion-mnist", FASHION_MNIST_CLASS_NAMES)
