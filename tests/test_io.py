"""``sn.io``: safetensors and npz weights files, written atomically, pickles refused."""
import os

import numpy as np
import pytest

import se_numpy as sn


def sample_state():
    return {"conv.weight": np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2),
            "bn.running_var": np.array([1.0, 2.0], dtype=np.float64),
            "bn.num_batches_tracked": np.array(5, dtype=np.int64)}          # 0-d, as PyTorch's


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_round_trip_keeps_names_shapes_dtypes_and_values(tmp_path, suffix):
    path = tmp_path / f"weights{suffix}"
    state = sample_state()
    assert sn.io.save_weights(path, state) == os.fspath(path)
    loaded = sn.io.load_weights(path)
    assert sorted(loaded) == sorted(state)
    for key, value in state.items():
        assert loaded[key].shape == value.shape and loaded[key].dtype == value.dtype, key
        np.testing.assert_array_equal(loaded[key], value)
    assert os.listdir(tmp_path) == [path.name]               # no temporary file left behind


def test_model_round_trip_through_safetensors(tmp_path):
    model = sn.models.create("se_tiny_resnet", seed=5)
    path = tmp_path / "tiny.safetensors"
    sn.io.save_weights(path, model.state_dict())
    other = sn.models.create("se_tiny_resnet", weights=path, seed=6)
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(model.eval()(x), other.eval()(x))
    as64 = sn.models.create("se_tiny_resnet", weights=path, dtype=np.float64)
    assert as64.conv1.weight.dtype == np.float64                      # cast to the model's dtype


@pytest.mark.parametrize("suffix", [".pth", ".pt", ".bin"])
def test_pytorch_pickles_are_refused_with_the_conversion(tmp_path, suffix):
    path = tmp_path / f"model{suffix}"
    path.write_bytes(b"not read")
    with pytest.raises(ValueError) as error:
        sn.io.load_weights(path)
    message = str(error.value)
    assert "\n" not in message and "can run arbitrary code" in message
    assert "safetensors.torch" in message and "torch.load" in message
    assert f"model.safetensors" in message


def test_bad_files_and_arguments(tmp_path):
    with pytest.raises(ValueError, match="expected a file ending in .safetensors or .npz"):
        sn.io.load_weights(tmp_path / "weights.h5")
    with pytest.raises(FileNotFoundError, match="no such weights file"):
        sn.io.load_weights(tmp_path / "missing.safetensors")
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x00" * 3)
    with pytest.raises(ValueError, match="not a readable .safetensors"):
        sn.io.load_weights(corrupt)
    not_zip = tmp_path / "text.npz"
    not_zip.write_text("hello")
    with pytest.raises(ValueError, match="not a readable .npz"):
        sn.io.load_weights(not_zip)
    with pytest.raises(TypeError, match="mapping"):
        sn.io.save_weights(tmp_path / "x.npz", [np.zeros(2)])
    with pytest.raises(TypeError, match="numeric array"):
        sn.io.save_weights(tmp_path / "x.npz", {"names": np.array(["a", "b"], dtype=object)})
    assert not (tmp_path / "x.npz").exists()


def test_npz_with_pickled_objects_is_not_unpickled(tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(path, evil=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="not a readable .npz"):
        sn.io.load_weights(path)


def test_failed_write_leaves_the_old_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "weights.npz"
    sn.io.save_weights(path, sample_state())
    before = path.read_bytes()

    def broken_savez(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        sn.io.save_weights(path, sample_state())
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["weights.npz"]
