"""Real-format loaders on tiny files written here: good files load, bad files fail cleanly.

Every file is built byte by byte in the test (pickle / struct / gzip), so the
expected arrays are known independently of the loader.
"""
import gzip
import os
import pickle
import struct

import numpy as np
import pytest

from se_numpy.data import (load_cifar10, load_dataset, load_fashion_mnist, load_mnist,
                           read_cifar_batch)


# ----------------------------------------------------------------------------- CIFAR
def _cifar_batch(count, seed, label_key=b"labels", num_classes=10):
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, (count, 3072), dtype=np.uint8)
    labels = [int(v) for v in rng.integers(0, num_classes, count)]
    return {b"batch_label": b"testing batch", label_key: labels, b"data": data,
            b"filenames": [b"img%d.png" % i for i in range(count)]}


def _write_pickle(path, obj):
    # protocol 3 keeps bytes as bytes and numpy arrays as _reconstruct/ndarray/dtype,
    # the same globals as the Python 2 originals read with encoding="bytes"
    with open(path, "wb") as handle:
        pickle.dump(obj, handle, protocol=3)


@pytest.fixture
def cifar10_dir(tmp_path):
    batches = {}
    for i in range(1, 6):
        batches[f"data_batch_{i}"] = _cifar_batch(4, seed=i)
    batches["test_batch"] = _cifar_batch(3, seed=99)
    for name, batch in batches.items():
        _write_pickle(tmp_path / name, batch)
    return tmp_path, batches


def test_cifar10_loads_pixels_in_channel_plane_order(cifar10_dir):
    directory, batches = cifar10_dir
    data = load_cifar10(str(directory))
    assert data.train_images.shape == (20, 3, 32, 32)
    assert data.test_images.shape == (3, 3, 32, 32)
    first = batches["data_batch_1"][b"data"][0]
    # row layout: 1024 red values, then green, then blue; each plane row-major
    assert data.train_images[0, 0, 0, 0] == first[0]
    assert data.train_images[0, 0, 1, 0] == first[32]
    assert data.train_images[0, 1, 0, 0] == first[1024]
    assert data.train_images[0, 2, 31, 31] == first[3071]
    expected_labels = sum((batches[f"data_batch_{i}"][b"labels"] for i in range(1, 6)), [])
    np.testing.assert_array_equal(data.train_labels, expected_labels)
    np.testing.assert_array_equal(data.test_labels, batches["test_batch"][b"labels"])
    assert data.num_classes == 10 and data.class_names[0] == "airplane"


def test_cifar100_uses_fine_labels_and_meta(tmp_path):
    _write_pickle(tmp_path / "train", _cifar_batch(5, 1, b"fine_labels", 100))
    _write_pickle(tmp_path / "test", _cifar_batch(2, 2, b"fine_labels", 100))
    names = [b"name%d" % i for i in range(100)]
    _write_pickle(tmp_path / "meta", {b"fine_label_names": names, b"coarse_label_names": []})
    data = load_dataset(f"cifar100:{tmp_path}")
    assert data.num_classes == 100 and data.class_names[7] == "name7"
    assert data.train_images.shape == (5, 3, 32, 32)


def test_cifar_missing_file_names_it(cifar10_dir):
    directory, _ = cifar10_dir
    os.remove(directory / "data_batch_3")
    with pytest.raises(FileNotFoundError, match="data_batch_3"):
        load_cifar10(str(directory))


def test_cifar_truncated_file_fails_cleanly(cifar10_dir):
    directory, _ = cifar10_dir
    path = directory / "data_batch_2"
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="data_batch_2"):
        load_cifar10(str(directory))


def test_cifar_label_out_of_range(tmp_path):
    batch = _cifar_batch(4, 0)
    batch[b"labels"][2] = 10
    _write_pickle(tmp_path / "b", batch)
    with pytest.raises(ValueError, match=r"\[0, 9\].*10"):
        read_cifar_batch(str(tmp_path / "b"), "labels", 10)


def test_cifar_wrong_data_shape(tmp_path):
    batch = _cifar_batch(4, 0)
    batch[b"data"] = batch[b"data"][:, :3000]
    _write_pickle(tmp_path / "b", batch)
    with pytest.raises(ValueError, match=r"\(N, 3072\)"):
        read_cifar_batch(str(tmp_path / "b"), "labels", 10)


def test_cifar_label_count_mismatch(tmp_path):
    batch = _cifar_batch(4, 0)
    batch[b"labels"] = batch[b"labels"][:3]
    _write_pickle(tmp_path / "b", batch)
    with pytest.raises(ValueError, match="4 images but 3 labels"):
        read_cifar_batch(str(tmp_path / "b"), "labels", 10)


class _RunsCommand:
    """Unpickling this object calls os.system(command) — the classic pickle attack."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


@pytest.mark.parametrize("protocol", [3, 4, 5])
def test_tampered_pickle_is_refused_without_running(tmp_path, protocol):
    marker = tmp_path / "was_run"
    batch = _cifar_batch(2, 0)
    batch[b"batch_label"] = _RunsCommand(f"touch {marker}")
    path = tmp_path / "data_batch_1"
    with open(path, "wb") as handle:
        pickle.dump(batch, handle, protocol=protocol)
    with pytest.raises(ValueError, match=r"refusing to load global .*system"):
        read_cifar_batch(str(path), "labels", 10)
    assert not marker.exists()


def test_pickle_calling_eval_is_refused(tmp_path):
    # hand-written protocol-0 pickle: builtins.eval("1+1")
    path = tmp_path / "test_batch"
    path.write_bytes(b"cbuiltins\neval\n(S'1+1'\ntR.")
    with pytest.raises(ValueError, match="builtins.eval"):
        read_cifar_batch(str(path), "labels", 10)


# ----------------------------------------------------------------------------- IDX
def _idx_bytes(array, magic):
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", size) for size in array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write_mnist(directory, gz, train_count=5, test_count=3, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {}
    for prefix, count in (("train", train_count), ("t10k", test_count)):
        images = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, count, dtype=np.uint8)
        arrays[prefix] = (images, labels)
        for stem, array, magic in ((f"{prefix}-images-idx3-ubyte", images, 2051),
                                   (f"{prefix}-labels-idx1-ubyte", labels, 2049)):
            raw = _idx_bytes(array, magic)
            if gz:
                with gzip.open(directory / (stem + ".gz"), "wb") as handle:
                    handle.write(raw)
            else:
                (directory / stem).write_bytes(raw)
    return arrays


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_loads_plain_and_gzipped(tmp_path, gz):
    arrays = _write_mnist(tmp_path, gz)
    data = load_mnist(str(tmp_path))
    assert data.train_images.shape == (5, 1, 28, 28) and data.test_images.shape == (3, 1, 28, 28)
    np.testing.assert_array_equal(data.train_images[:, 0], arrays["train"][0])
    np.testing.assert_array_equal(data.test_labels, arrays["t10k"][1])
    assert data.train_labels.dtype == np.int64


def test_fashion_mnist_has_clothing_names(tmp_path):
    _write_mnist(tmp_path, gz=True)
    data = load_dataset(f"fashion-mnist:{tmp_path}")
    assert data.name == "fashion-mnist" and data.class_names[9] == "ankle boot"
    assert load_fashion_mnist(str(tmp_path)).train_images.shape == (5, 1, 28, 28)


def test_idx_wrong_magic(tmp_path):
    _write_mnist(tmp_path, gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    raw = bytearray(path.read_bytes())
    raw[3] = 0x01                           # 2049: a label file's magic in an image file
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte: wrong magic number 2049"):
        load_mnist(str(tmp_path))


def test_idx_truncated(tmp_path):
    _write_mnist(tmp_path, gz=False)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte.*truncated"):
        load_mnist(str(tmp_path))


def test_idx_truncated_gzip_stream(tmp_path):
    _write_mnist(tmp_path, gz=True)
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-12])
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte.gz"):
        load_mnist(str(tmp_path))


def test_idx_label_out_of_range(tmp_path):
    _write_mnist(tmp_path, gz=False)
    labels = np.array([1, 2, 12, 3, 4], dtype=np.uint8)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx_bytes(labels, 2049))
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte.*\[0, 9\].*12"):
        load_mnist(str(tmp_path))


def test_idx_count_mismatch(tmp_path):
    _write_mnist(tmp_path, gz=False)
    labels = np.array([1, 2, 3, 4], dtype=np.uint8)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx_bytes(labels, 2049))
    with pytest.raises(ValueError, match="5 images but .* 4 labels"):
        load_mnist(str(tmp_path))


def test_idx_missing_file(tmp_path):
    _write_mnist(tmp_path, gz=False)
    os.remove(tmp_path / "t10k-labels-idx1-ubyte")
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        load_mnist(str(tmp_path))


def test_unknown_dataset_and_missing_directory(tmp_path):
    with pytest.raises(ValueError, match="unknown data set 'imagenet'"):
        load_dataset("imagenet:/x")
    with pytest.raises(ValueError, match="needs a directory"):
        load_dataset("cifar10")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_dataset(f"mnist:{tmp_path / 'nowhere'}")
