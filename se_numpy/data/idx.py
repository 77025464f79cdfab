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
import zlib

import numpy as np

from .dataset import ImageDataset, check_label_range

MAX_IDX_BYTES = 256 * 2**20     # MNIST's training images are 47 MB
MAX_GZIP_RATIO = 200            # MNIST's images compress 5:1; deflate's limit is about 1032:1
READ_CHUNK = 2**20
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


def _open(path):
    return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")


def _read_exactly(handle, count):
    """``count`` bytes from a (possibly decompressing) stream, in chunks: never more."""
    chunks, remaining = [], count
    while remaining:
        chunk = handle.read(min(remaining, READ_CHUNK))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _check_header(path, header, expected_magic):
    """The magic and the sizes, checked before any data is read; returns the shape."""
    if len(header) < 4:
        raise ValueError(f"{path}: {len(header)} bytes is too short for an IDX header")
    magic = struct.unpack(">I", header[:4])[0]
    if magic != expected_magic:
        raise ValueError(f"{path}: wrong magic number {magic} (0x{magic:08x}), "
                         f"expected {expected_magic} (0x{expected_magic:08x})")
    ndim = header[3]
    if len(header) < 4 + 4 * ndim:
        raise ValueError(f"{path}: truncated header ({len(header)} bytes, need {4 + 4 * ndim})")
    shape = struct.unpack(f">{ndim}I", header[4:4 + 4 * ndim])
    if 0 in shape:
        raise ValueError(f"{path}: header declares shape {shape}: no images")
    count = 1
    for size in shape:           # Python ints: no overflow however large the sizes
        count *= size
    if count > MAX_IDX_BYTES:
        raise ValueError(f"{path}: header declares shape {shape}, i.e. {count} bytes, more "
                         f"than the {MAX_IDX_BYTES} an IDX file may hold")
    return shape, count


def read_idx(path, expected_magic):
    """Parse one IDX file of unsigned bytes into an ndarray of the shape its header declares.

    The header is checked before the data is touched: a plain file's size must
    equal what the header promises, and a gzip stream is decompressed in
    chunks, stopping one byte after the promised size (a small ``.gz`` that
    expands to gigabytes costs at most the declared size, itself capped).
    """
    compressed = path.endswith(".gz")
    try:
        file_size = os.path.getsize(path)
        with _open(path) as handle:
            # magic tells the rank, so the whole header is 4 + 4 * rank bytes
            header = _read_exactly(handle, 4)
            if len(header) == 4:
                header += _read_exactly(handle, 4 * header[3])
            shape, count = _check_header(path, header, expected_magic)
            expected_length = len(header) + count
            if not compressed and file_size != expected_length:
                raise ValueError(f"{path}: header declares shape {shape}, i.e. {expected_length} "
                                 f"bytes, but the file has {file_size} bytes"
                                 + (" (truncated)" if file_size < expected_length else ""))
            if compressed and count > MAX_GZIP_RATIO * file_size:
                raise ValueError(f"{path}: header declares {count} bytes from {file_size} "
                                 f"compressed, a ratio above {MAX_GZIP_RATIO} (not an IDX file)")
            data = _read_exactly(handle, count + 1)
    except (OSError, EOFError, zlib.error) as error:   # gzip.BadGzipFile is an OSError
        raise ValueError(f"{path}: cannot read ({type(error).__name__}: {error})") from None
    if len(data) != count:
        raise ValueError(f"{path}: header declares shape {shape}, i.e. {expected_length} bytes, "
                         f"but the {'stream' if compressed else 'file'} has "
                         + (f"{len(header) + len(data)} bytes (truncated)" if len(data) < count
                            else "more"))
    return np.frombuffer(data, dtype=np.uint8).reshape(shape).copy()


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
