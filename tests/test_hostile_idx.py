"""Crafted IDX files: the header is judged before the data, and decompression stops at it.

Memory is measured with tracemalloc around the read: a refused file costs at
most a small multiple of its own size (plus a constant for the reader), a
gzip bomb at most the size its header declares.
"""
import os
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hostile import archives as A
from se_numpy.data import idx, read_idx

CONSTANT_BYTES = 2 * 2**20
IMAGES, LABELS = 2051, 2049


def _refused(path, match, magic=IMAGES):
    """Assert one ValueError line naming ``path``; returns (message, peak traced bytes)."""
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=match) as caught:
            read_idx(str(path), magic)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = str(caught.value)
    assert message.startswith(f"{path}:") and "\n" not in message and len(message) < 400
    assert peak <= 4 * os.path.getsize(path) + CONSTANT_BYTES, peak
    return message, peak


def test_a_gzip_bomb_is_read_only_up_to_the_declared_size(tmp_path):
    # the header declares 100 images (78 kB), the stream then holds 64 MB of zeros
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(A.zeros_gzip(A.idx_header(IMAGES, (100, 28, 28)), 64 * 2**20))
    assert path.stat().st_size < 100_000
    _, peak = _refused(path, r"declares shape \(100, 28, 28\).*stream has more")
    assert peak < 100 * 784 * 3 + CONSTANT_BYTES


def test_a_declared_size_far_beyond_the_compressed_file_is_refused_first(tmp_path):
    # 250 MB promised by a 1 kB .gz: refused on the ratio before decompressing
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(A.zeros_gzip(A.idx_header(IMAGES, (318_000, 28, 28)), 10_000))
    message, peak = _refused(path, r"a ratio above 200")
    assert peak < CONSTANT_BYTES


@pytest.mark.parametrize("shape, match", [
    ((2**32 - 1, 2**32 - 1, 2**32 - 1), r"more than the \d+ an IDX file may hold"),
    ((0, 28, 28), r"no images"),
])
def test_impossible_headers_are_refused_before_any_data(tmp_path, shape, match):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(A.idx_header(IMAGES, shape) + b"\x00" * 100)
    _, peak = _refused(path, match)
    assert peak < CONSTANT_BYTES


def test_a_sparse_plain_file_is_judged_by_its_size_not_read(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    with open(path, "wb") as handle:
        handle.write(A.idx_header(IMAGES, (10, 28, 28)))
        handle.truncate(2**31)                       # 2 GiB, sparse: costs no disk
    _, peak = _refused(path, r"declares shape \(10, 28, 28\), i\.e\. 7856 bytes, but the file "
                             r"has 2147483648 bytes")
    assert peak < CONSTANT_BYTES


@pytest.mark.parametrize("raw, match", [
    (b"\x00\x00", r"too short for an IDX header"),
    (b"\x00\x00\x08\x03\x00\x00", r"truncated header"),
    (b"\x00\x00\x08\x01\x00\x00\x00\x01\x05", r"wrong magic number 2049"),
])
def test_short_and_wrong_headers(tmp_path, raw, match):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(raw)
    _refused(path, match)


def test_a_damaged_gzip_stream_is_one_line(tmp_path):
    raw = A.gzip_bytes(A.idx_bytes(np.arange(2 * 28 * 28).reshape(2, 28, 28), IMAGES))
    damaged = bytearray(raw)
    damaged[-8] ^= 0xFF                        # the CRC32 of the uncompressed data
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(bytes(damaged))
    _refused(path, r"cannot read \(BadGzipFile: CRC check failed")


def test_an_unreadable_file_is_one_line(tmp_path, monkeypatch):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(A.idx_bytes(np.zeros((1, 28, 28)), IMAGES))

    def no_permission(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))
    monkeypatch.setattr(idx, "open", no_permission, raising=False)
    _refused(path, r"cannot read \(PermissionError")


# ----------------------------------------------------------------------------- random damage
VALID = A.idx_bytes(np.arange(3 * 28 * 28).reshape(3, 28, 28) % 251, IMAGES)
VALID_GZ = A.gzip_bytes(VALID)


def _outcome_is_clean(tmp_path, raw, name):
    path = tmp_path / name
    path.write_bytes(raw)
    try:
        array = read_idx(str(path), IMAGES)
    except ValueError as error:
        assert str(error).startswith(f"{path}:") and "\n" not in str(error)
        return
    assert array.dtype == np.uint8 and array.ndim == 3 and array.size == len(raw) - 16 \
        or name.endswith(".gz")


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_truncated_and_mutated_idx_files_fail_cleanly(tmp_path, data):
    name, valid = data.draw(st.sampled_from([("train-images-idx3-ubyte", VALID),
                                              ("train-images-idx3-ubyte.gz", VALID_GZ)]))
    raw = bytearray(valid[:data.draw(st.integers(0, len(valid)))])
    for position, value in data.draw(st.lists(st.tuples(st.integers(0, max(0, len(raw) - 1)),
                                                        st.integers(0, 255)), max_size=3)):
        if raw:
            raw[position] = value
    _outcome_is_clean(tmp_path, bytes(raw), name)
    os.remove(tmp_path / name)
