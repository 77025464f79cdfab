"""IDX files, gzip streams and checkpoint archives, well-formed or crafted.

``idx_bytes`` writes the IDX layout from its definition (big-endian magic and
sizes, then the bytes); ``zeros_gzip`` streams zeros through zlib so a test
can make a small ``.gz`` that expands far beyond its size without holding the
expansion in memory; ``npy_member`` writes one ``.npy`` member from its
header so a checkpoint can declare a shape its data does not have.
"""
import gzip
import io
import struct
import zipfile
import zlib

import numpy as np


def idx_bytes(array, magic):
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", n) for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


def idx_header(magic, shape):
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", n) for n in shape)


def zeros_gzip(prefix, zero_count, chunk=2**22):
    """A gzip file of ``prefix`` followed by ``zero_count`` zero bytes, compressed in chunks."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)        # 31: gzip container
    parts = [compressor.compress(prefix)]
    zeros = bytes(chunk)
    remaining = zero_count
    while remaining:
        step = min(chunk, remaining)
        parts.append(compressor.compress(zeros[:step]))
        remaining -= step
    parts.append(compressor.flush())
    return b"".join(parts)


def gzip_bytes(raw):
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as handle:
        handle.write(raw)
    return buffer.getvalue()


def npy_header(dtype, shape):
    """The .npy 1.0 header for ``dtype`` and ``shape`` (what np.save writes first)."""
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
              "shape": tuple(shape)}
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue()


def rewrite_npz(source, destination, replace=None, extra=None, drop=(), compress=()):
    """Copy the members of ``source`` into ``destination``, replacing some member bytes,
    adding ``extra`` members (name -> bytes) and deflating the names in ``compress``."""
    replace, extra = replace or {}, extra or {}
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(destination, "w") as new:
        for info in old.infolist():
            if info.filename in drop:
                continue
            data = replace.get(info.filename, old.read(info.filename))
            method = zipfile.ZIP_DEFLATED if info.filename in compress else zipfile.ZIP_STORED
            new.writestr(info.filename, data, compress_type=method)
        for name, data in extra.items():
            method = zipfile.ZIP_DEFLATED if name in compress else zipfile.ZIP_STORED
            new.writestr(name, data, compress_type=method)


def deflated_zeros_member(path, name, header, zero_count):
    """Append member ``name`` = ``header`` + zeros, deflated, to the zip at ``path``,
    streaming the compression so the test never holds the expansion."""
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open(name, "w", force_zip64=True) as stream:
            stream.write(header)
            zeros = bytes(2**22)
            remaining = zero_count
            while remaining:
                step = min(len(zeros), remaining)
                stream.write(zeros[:step])
                remaining -= step


def write_tiny_mnist(directory, train_count=16, test_count=8, seed=0):
    """A tiny MNIST in ``directory`` (plain IDX files): a real data set that loads in
    milliseconds, for command-line runs in subprocesses."""
    rng = np.random.default_rng(seed)
    for prefix, count in (("train", train_count), ("t10k", test_count)):
        images = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, count, dtype=np.uint8)
        (directory / f"{prefix}-images-idx3-ubyte").write_bytes(idx_bytes(images, 2051))
        (directory / f"{prefix}-labels-idx1-ubyte").write_bytes(idx_bytes(labels, 2049))
    return directory
