"""Crafted checkpoints: one line naming the file, members checked before they are read.

One real checkpoint is written by a 1-epoch run of ``tiny_resnet``; each test
damages a copy (tests/hostile/archives.py) and loads it the way ``--resume``
does, with the layout of the same model and optimiser.
"""
import io
import json
import os
import shutil
import tracemalloc
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hostile import archives as A
from se_numpy.data import SyntheticConfig, make_synthetic
from se_numpy.train import Trainer, TrainConfig
from se_numpy.train.checkpoint import MAX_META_BYTES, load_checkpoint, read_meta, save_checkpoint

CONSTANT_BYTES = 2 * 2**20


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished 1-epoch run: (trainer, checkpoint path, its meta dict)."""
    directory = tmp_path_factory.mktemp("run")
    data = make_synthetic(4, SyntheticConfig(train_size=64, test_size=32))
    config = TrainConfig(model="tiny_resnet", data="synthetic:4", epochs=1, batch_size=32,
                         backend="numpy", seed=1)
    trainer = Trainer(config, str(directory), quiet=True, dataset=data)
    trainer.fit()
    path = str(directory / "checkpoint.npz")
    return trainer, path, read_meta(path)


def _load(trainer, path):
    return load_checkpoint(str(path), *trainer.checkpoint_layout())


def _refused(trainer, path, match):
    """One ValueError naming ``path``; returns the peak traced memory of the attempt."""
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=match) as caught:
            _load(trainer, path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = str(caught.value)
    assert message.startswith(f"{path}:") and "\n" not in message and len(message) < 600, message
    assert peak <= 4 * os.path.getsize(path) + CONSTANT_BYTES, peak
    return peak


def _npy(array):
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _with_meta(run, tmp_path, meta):
    _, source, _ = run
    path = tmp_path / "checkpoint.npz"
    text = meta if isinstance(meta, str) else json.dumps(meta)
    A.rewrite_npz(source, path, replace={"meta.npy": _npy(np.array(text))})
    return path


def test_the_real_checkpoint_loads(run):
    trainer, path, meta = run
    model_state, optimizer_state, loaded_meta = _load(trainer, path)
    assert loaded_meta["epoch"] == 1 == meta["epoch"]
    for name, value in trainer.model.state_dict().items():
        np.testing.assert_array_equal(model_state[name], value)
    assert any(name.startswith("momentum_buffer.") for name in optimizer_state)


# ----------------------------------------------------------------------------- the archive
def test_not_a_zip_file(run, tmp_path):
    path = tmp_path / "checkpoint.npz"
    path.write_text("epoch 3, accuracy 0.9\n")
    _refused(run[0], path, r"not a se_numpy checkpoint \(not a readable \.npz archive")


def test_a_crc_damaged_member(run, tmp_path):
    trainer, source, _ = run
    path = tmp_path / "checkpoint.npz"
    shutil.copy(source, path)
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("model/fc.weight.npy")
    raw = bytearray(path.read_bytes())
    # stored member: its data follows a 30-byte local header, the name and the extra field
    raw[info.header_offset + 30 + len(info.filename) + len(info.extra) + 200] ^= 0xFF
    path.write_bytes(bytes(raw))
    _refused(trainer, path, r"entry 'model/fc\.weight': unreadable \(BadZipFile: Bad CRC-32")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fraction=st.floats(0.0, 0.9999))
def test_a_truncated_checkpoint(run, tmp_path, fraction):
    trainer, source, _ = run
    raw = open(source, "rb").read()
    path = tmp_path / "checkpoint.npz"
    path.write_bytes(raw[:int(fraction * len(raw))])
    _refused(trainer, path, r"not a se_numpy checkpoint|unreadable|truncated")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.floats(0.0, 0.9999), st.integers(0, 255)),
                      min_size=1, max_size=3))
def test_a_mutated_checkpoint_loads_or_fails_in_one_line(run, tmp_path, edits):
    trainer, source, _ = run
    raw = bytearray(open(source, "rb").read())
    for fraction, value in edits:
        raw[int(fraction * len(raw))] = value
    path = tmp_path / "checkpoint.npz"
    path.write_bytes(bytes(raw))
    try:
        model_state, _, meta = _load(trainer, path)
    except ValueError as error:
        assert str(error).startswith(f"{path}:") and "\n" not in str(error)
        return
    # a byte flip that zip's CRC does not cover (e.g. in a name's padding) may load: then it
    # is still exactly this model's layout
    assert {k: v.shape for k, v in model_state.items()} == \
        {k: v.shape for k, v in trainer.model.state_dict().items()}


# ----------------------------------------------------------------------------- members
def test_a_member_of_the_wrong_shape_is_refused_from_its_header(run, tmp_path):
    trainer, source, _ = run
    path = tmp_path / "checkpoint.npz"
    A.rewrite_npz(source, path, replace={"model/fc.weight.npy": _npy(np.zeros(3, np.float32))})
    _refused(trainer, path, r"entry 'model/fc\.weight': shape \(3,\) float32, the model needs "
                            r"\(10, 32\) float32")


def test_an_object_member_is_refused(run, tmp_path):
    trainer, source, _ = run
    path = tmp_path / "checkpoint.npz"
    header = A.npy_header(object, (10, 32))
    A.rewrite_npz(source, path, replace={"model/fc.weight.npy": header + b"\x00" * 64})
    _refused(trainer, path, r"entry 'model/fc\.weight': dtype object is not a plain number")


@pytest.mark.parametrize("drop, extra, match", [
    (("optimizer/group.0.lr.npy",), {}, r"optimizer entries do not fit: missing 'group\.0\.lr'"),
    (("model/fc.bias.npy",), {}, r"model entries do not fit: missing 'fc\.bias'"),
    ((), {"model/surprise.npy": b""}, r"model entries do not fit: unexpected 'surprise'"),
])
def test_missing_and_extra_entries(run, tmp_path, drop, extra, match):
    trainer, source, _ = run
    path = tmp_path / "checkpoint.npz"
    A.rewrite_npz(source, path, drop=drop, extra=extra)
    _refused(trainer, path, match)


def test_an_unneeded_member_is_never_read(run, tmp_path):
    trainer, source, _ = run
    path = tmp_path / "checkpoint.npz"
    shutil.copy(source, path)
    # 64 MB of deflated zeros behind a valid header, in a member no one asks for
    A.deflated_zeros_member(path, "junk.npy", A.npy_header(np.uint8, (64 * 2**20,)),
                            64 * 2**20)
    assert path.stat().st_size < 2 * os.path.getsize(source) + 1_000_000
    tracemalloc.start()
    try:
        model_state, _, _ = _load(trainer, path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "fc.weight" in model_state
    assert peak < 4 * os.path.getsize(source) + CONSTANT_BYTES


def test_a_huge_meta_is_refused_from_its_header(run, tmp_path):
    trainer, source, _ = run
    path = tmp_path / "checkpoint.npz"
    shutil.copy(source, path)
    # the 300M-character meta, declared; the deflated zeros behind it are never read
    with zipfile.ZipFile(path) as archive:
        names = [name for name in archive.namelist() if name != "meta.npy"]
    A.rewrite_npz(source, path, drop=("meta.npy",))
    A.deflated_zeros_member(path, "meta.npy", A.npy_header("<U300000000", ()), 16 * 2**20)
    assert names
    peak = _refused(trainer, path, rf"entry 'meta': header declares 1200000000 bytes, more "
                                   rf"than {MAX_META_BYTES}")
    assert peak < CONSTANT_BYTES


# ----------------------------------------------------------------------------- meta
@pytest.mark.parametrize("change, match", [
    (lambda meta: [1, 2, 3], r"meta: expected a JSON object, got list"),
    (lambda meta: {k: v for k, v in meta.items() if k != "config"},
     r"meta: 'config' must be a JSON dict, got nothing"),
    (lambda meta: {**meta, "epoch": -5}, r"meta: epoch -5 outside \[0, 1\]"),
    (lambda meta: {**meta, "epoch": 7}, r"meta: epoch 7 outside \[0, 1\]"),
    (lambda meta: {**meta, "epoch": True}, r"meta: 'epoch' must be a JSON int"),
    (lambda meta: {**meta, "config": {**meta["config"], "epochs": "9"}},
     r"meta: config: epochs: expected an integer >= 0"),
    (lambda meta: {**meta, "config": {**meta["config"], "train_limit": 0}},
     r"meta: config: train_limit: expected an integer >= 1"),
    (lambda meta: {**meta, "config": {**meta["config"], "surprise": 1}},
     r"meta: config: TrainConfig: unknown settings \['surprise'\]"),
    (lambda meta: {**meta, "history": [{"epoch": 1}]}, r"meta: history must hold one row"),
    (lambda meta: {**meta, "normalization": {"mean": ["x"], "std": [1]}},
     r"meta: normalization\.mean must be a list of finite numbers"),
    (lambda meta: {**meta, "format_version": 99}, r"meta: checkpoint format 99, expected 1"),
], ids=["list", "no-config", "negative-epoch", "epoch-beyond-run", "bool-epoch",
        "string-epochs", "zero-limit", "unknown-setting", "short-history", "bad-mean",
        "format"])
def test_meta_is_type_checked(run, tmp_path, change, match):
    path = _with_meta(run, tmp_path, change(run[2]))
    _refused(run[0], path, match)


def test_deeply_nested_json_is_one_line(run, tmp_path):
    path = _with_meta(run, tmp_path, "[" * 100_000 + "]" * 100_000)
    _refused(run[0], path, r"entry 'meta': not JSON \(RecursionError")


def test_a_bad_generator_state_is_refused_on_restore(run, tmp_path):
    trainer, _, meta = run
    path = _with_meta(run, tmp_path, {**meta, "rng_state": json.dumps({"bit_generator": "os"})})
    with pytest.raises(ValueError, match=rf"{path}: checkpoint: unknown bit generator 'os'"):
        trainer.restore(str(path))


# ----------------------------------------------------------------------------- writing
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600)])
def test_a_checkpoint_is_created_with_the_umask(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        path = save_checkpoint(str(tmp_path / "checkpoint.npz"), {}, {}, {"epoch": 0})
    finally:
        os.umask(previous)
    assert os.stat(path).st_mode & 0o777 == mode
    assert os.listdir(tmp_path) == ["checkpoint.npz"]
