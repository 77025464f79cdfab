"""Crafted CIFAR pickles: each attack ends in one line naming the file, in bounded memory.

The files come from tests/hostile/pickles.py, written opcode by opcode. Every
refusal is checked for: a ValueError whose message starts with the file's
path, a single line of bounded length, the reason the docs give, no canary
file created, and a peak of traced memory (tracemalloc) within a small
multiple of the file's size plus a constant for the reader itself.
"""
import os
import pickle
import time
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hostile import pickles as P
from se_numpy.data import load_cifar100, read_cifar_batch
from se_numpy.data import pickle_reader

# the reader's own bookkeeping (opcode table, a few dicts) is well under this
CONSTANT_BYTES = 2 * 2**20


def _read(tmp_path, raw, name="data_batch_1"):
    path = tmp_path / name
    path.write_bytes(raw)
    return str(path), lambda: read_cifar_batch(str(path), "labels", 10)


def _refused(tmp_path, raw, match, memory_factor=4):
    """Assert the file is refused with ``match``; returns (message, peak bytes, seconds)."""
    path, read = _read(tmp_path, raw)
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(ValueError, match=match) as caught:
            read()
        seconds = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = str(caught.value)
    assert message.startswith(path + ":")
    assert "\n" not in message and len(message) < 600, message
    assert peak <= memory_factor * len(raw) + CONSTANT_BYTES, (peak, len(raw))
    return message, peak, seconds


# ----------------------------------------------------------------------------- the real layout
def test_the_official_python2_layout_loads():
    images = P.plain_images(3, seed=1)
    raw = P.cifar_batch_py2(images, [4, 0, 9])
    # Python's own unpickler agrees on what these bytes mean (an independent reading)
    reference = pickle.loads(raw, encoding="bytes")
    np.testing.assert_array_equal(reference[b"data"], images)
    loaded = pickle_reader.loads_restricted(raw)
    np.testing.assert_array_equal(loaded[b"data"], images)
    assert loaded[b"labels"] == [4, 0, 9] and loaded[b"filenames"][2] == b"img2.png"
    assert loaded[b"data"].flags.owndata and loaded[b"data"].flags.writeable


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
@pytest.mark.parametrize("keys", ["bytes", "str"])
def test_python3_repickles_load(tmp_path, protocol, keys):
    images = P.plain_images(3, seed=2)
    labels = [3, 1, 7]
    batch = {b"data": images, b"labels": labels, b"batch_label": b"re-pickled"}
    if keys == "str":
        batch = {key.decode(): value for key, value in batch.items()}
        batch["labels"] = np.array(labels, dtype=np.int64)     # an array this time
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(batch, protocol=protocol))
    loaded_images, loaded_labels = read_cifar_batch(str(path), "labels", 10)
    np.testing.assert_array_equal(loaded_images.reshape(3, 3072), images)
    np.testing.assert_array_equal(loaded_labels, labels)


def test_fortran_order_and_big_endian_arrays_are_rebuilt_exactly():
    values = np.arange(12, dtype=">f8").reshape(3, 4)
    loaded = pickle_reader.loads_restricted(
        pickle.dumps({"f": np.asfortranarray(values), "b": values}, protocol=5))
    np.testing.assert_array_equal(loaded["f"], values)
    np.testing.assert_array_equal(loaded["b"], values)
    assert loaded["b"].dtype == np.dtype(">f8")


# ----------------------------------------------------------------------------- code execution
@pytest.mark.parametrize("builder, match", [
    (lambda canary: P.os_system(f"touch {canary}"), r"refusing to load global os\.system"),
    (lambda canary: P.inst_system(f"touch {canary}"), r"opcode INST"),
    (lambda canary: P.obj_system(f"touch {canary}"), r"global os\.system"),
    (lambda canary: P.stack_global_eval(f"open({str(canary)!r}, 'w')"), r"builtins\.eval"),
    (lambda canary: P.newobj(), r"global builtins\.object"),
    (lambda canary: P.ext_code(), r"opcode EXT1"),
    (lambda canary: P.persistent_id(), r"opcode BINPERSID"),
    (lambda canary: P.codecs_encode("utf-7"), r"_codecs\.encode\(text, 'latin1'\)"),
], ids=["GLOBAL+REDUCE", "INST", "OBJ", "STACK_GLOBAL", "NEWOBJ", "EXT1", "BINPERSID",
        "codecs"])
def test_every_call_path_is_refused_and_nothing_runs(tmp_path, builder, match):
    canary = tmp_path / "canary"
    _refused(tmp_path, builder(canary), match)
    assert not canary.exists()


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_a_reduce_object_is_refused_in_every_protocol(tmp_path, protocol):
    class RunsCommand:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'canary'}",))

    raw = pickle.dumps({b"data": RunsCommand()}, protocol=protocol)
    # protocols 0-1 spell the dict with text opcodes this reader does not accept at all
    _refused(tmp_path, raw, r"refusing to load global (posix|os|nt)\.system|not accepted")
    assert not (tmp_path / "canary").exists()


# ----------------------------------------------------------------------------- numpy argument abuse
@pytest.mark.parametrize("offset", [-4096, -2**40, 2**40])
def test_ndarray_with_an_offset_is_never_called(tmp_path, offset):
    _refused(tmp_path, P.ndarray_with_offset(offset), r"stand-in for numpy\.ndarray.*cannot be called")


@pytest.mark.parametrize("builder, match", [
    (P.object_dtype_array, r"numpy\.dtype\(b'O8'.*only the plain numeric codes"),
    (P.structured_dtype, r"numpy\.dtype\(b'V8'"),
    (P.dtype_with_object_flags, r"not that of a plain number"),
])
def test_dtypes_other_than_plain_numbers_are_refused(tmp_path, builder, match):
    _refused(tmp_path, builder(), match)


@pytest.mark.parametrize("shape", [(350_000, 3072), (500_000, 3072), (2, -3), (1, 2, 3, 1, 1)])
def test_an_array_shape_must_match_its_bytes_exactly(tmp_path, shape):
    message, peak, _ = _refused(tmp_path, P.declared_shape(shape),
                                r"shape|non-negative ints")
    assert peak < CONSTANT_BYTES          # nothing the size of the declared shape was made


def test_an_array_where_a_flag_belongs_is_refused_not_compared(tmp_path):
    # comparing an array with 0 or 1 would raise NumPy's "truth value is ambiguous"
    flag = P.ndarray((2,), b"ab")
    raw = P.with_data(P.glob("numpy", "dtype") + P.short_string(b"u1") + flag + P.integer(1)
                      + P.TUPLE3 + P.REDUCE)
    _refused(tmp_path, raw, r"numpy\.dtype\(b'u1', a ndarray of 2, 1\): only the plain")


def test_one_data_string_cannot_feed_many_arrays(tmp_path):
    raw = P.amplified_arrays(1000)          # 100 kB of data, 1000 arrays: 100 MB if allowed
    _refused(tmp_path, raw, r"would build .* bytes from a file of")


# ----------------------------------------------------------------------------- machine limits
def test_a_huge_memo_index_costs_one_entry(tmp_path):
    raw = P.memo_index(2**27)              # 9 bytes; Python's unpickler allocates 2 GB for it
    message, peak, _ = _refused(tmp_path, raw, r"expected a pickled dict, got NoneType")
    assert len(raw) == 9 and peak < CONSTANT_BYTES


@pytest.mark.parametrize("builder, match", [
    (lambda: P.nested_tuples(10**6), r"nested more than 8 deep"),
    (lambda: P.nested_marks(10**5), r"more than 8 open MARKs"),
    (lambda: P.aliased_lists(10**4), r"changed after it was put into another container"),
], ids=["tuples", "marks", "aliased-lists"])
def test_nesting_is_bounded(tmp_path, builder, match):
    _refused(tmp_path, builder(), match)


def test_colliding_int_keys_are_refused_fast(tmp_path):
    # the flood: 40 000 keys k * (2**61 - 1), all hashing to 0; Python's
    # unpickler takes 13 s on it (quadratic). Every such key past k = 8 exceeds 64 bits.
    _, _, seconds = _refused(tmp_path, P.colliding_int_keys(40_000), r"wider than 64 bits")
    assert seconds < 2.0


def test_dict_size_is_bounded(tmp_path):
    entries = b"".join(P.integer(k) + P.NONE for k in range(300))
    raw = P.PROTO2 + P.EMPTY_DICT + P.MARK + entries + P.SETITEMS + P.STOP
    _refused(tmp_path, raw, r"more than 256 keys")


def test_a_billion_laughs_key_is_refused_without_printing_it(tmp_path):
    raw = P.laughs_key(levels=6, width=10)       # 10**6 leaves behind 300 bytes
    message, _, _ = _refused(tmp_path, raw, r"dict key must be bytes, str or int, found a tuple")
    assert len(message) < 300


def test_a_length_beyond_the_file_is_refused_without_allocating(tmp_path):
    _, peak, _ = _refused(tmp_path, P.bytes_longer_than_file(2**31), r"truncated")
    assert peak < CONSTANT_BYTES


def test_file_size_is_checked_before_reading(tmp_path, monkeypatch):
    monkeypatch.setattr(pickle_reader, "MAX_FILE_BYTES", 10_000)
    raw = P.cifar_batch_py2(P.plain_images(2), [1, 2])       # 6 kB of data + overhead
    assert len(raw) > 6000
    big = raw + b"\x00" * 10_000
    _refused(tmp_path, big, r"bytes is more than the 10000 a CIFAR file may have")


# ----------------------------------------------------------------------------- contents
@pytest.mark.parametrize("value, match", [(2**63, r"outside int64"),
                                          (2**70, r"wider than 64 bits"),
                                          (-1, r"\[0, 9\]")])
def test_labels_beyond_int64_or_the_classes(tmp_path, value, match):
    _refused(tmp_path, P.label_list_with(value), match)


def test_an_empty_batch_is_refused_naming_the_file(tmp_path):
    raw = P.cifar_batch_py2(np.zeros((0, 3072), np.uint8), [])
    _refused(tmp_path, raw, r"holds no images")


def test_a_missing_key_message_stays_short(tmp_path):
    raw = P.batch_dict([(P.short_string(b"x" * 200), P.NONE)] * 3)
    message, _, _ = _refused(tmp_path, raw, r"missing key 'data'")
    assert len(message) < 400


def test_cifar100_meta_names_are_short_and_printable(tmp_path):
    images = P.plain_images(2)
    for name in ("train", "test"):
        (tmp_path / name).write_bytes(P.cifar_batch_py2(images, [5, 99], b"fine_labels"))
    long_name = b"x" * 100_000
    names = P.EMPTY_LIST + P.MARK + P.string(long_name) + P.put(2) + P.get(2) * 99 + P.APPENDS
    (tmp_path / "meta").write_bytes(P.batch_dict([(P.short_string(b"fine_label_names"), names)]))
    with pytest.raises(ValueError, match=r"meta: fine_label_names\[0\] must be a printable "
                                         r"string of 1 to 64 characters"):
        load_cifar100(str(tmp_path))


# ----------------------------------------------------------------------------- random damage
VALID = P.cifar_batch_py2(P.plain_images(2, seed=3), [1, 8])


def _outcome_is_clean(tmp_path, raw):
    """A damaged file either loads as a well-formed batch or is one ValueError naming it."""
    path, read = _read(tmp_path, raw)
    try:
        images, labels = read()
    except ValueError as error:
        assert str(error).startswith(path + ":") and "\n" not in str(error)
        return
    assert images.dtype == np.uint8 and images.shape[1:] == (3, 32, 32)
    assert labels.shape == (images.shape[0],) and labels.min() >= 0 and labels.max() < 10


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, len(VALID) - 1))
def test_truncated_files_fail_cleanly(tmp_path, cut):
    _outcome_is_clean(tmp_path, VALID[:cut])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)),
                      min_size=1, max_size=4))
def test_mutated_files_fail_cleanly(tmp_path, edits):
    raw = bytearray(VALID)
    for position, value in edits:
        raw[position] = value
    _outcome_is_clean(tmp_path, bytes(raw))


def test_an_unreadable_file_is_one_line(tmp_path, monkeypatch):
    path, read = _read(tmp_path, VALID)

    def no_permission(*args, **kwargs):
        raise PermissionError(13, "Permission denied", path)
    monkeypatch.setattr(pickle_reader, "open", no_permission, raising=False)
    with pytest.raises(ValueError, match=rf"^{path}: not a valid CIFAR file: cannot read "
                                         r"\(PermissionError: Permission denied\)$"):
        read()
