"""Every file the package writes goes through se_numpy/atomic.py: it appears whole or
not at all, leaves no temporary file behind, and is created with the process umask
(0644 under the usual 022), not the 0600 of tempfile.mkstemp."""
import json
import os
import stat

import numpy as np
import pytest

from se_numpy import atomic
from se_numpy.ablate.runs import write_json_atomically
from se_numpy.bench.report import write_json
from se_numpy.io import save_weights


def _writers():
    weights = {"fc.weight": np.arange(6, dtype=np.float32).reshape(2, 3)}
    return {
        "benchmark json": ("bench.json", lambda path: write_json({"a": 1}, path)),
        "ablation json": ("result.json", lambda path: write_json_atomically(path, {"a": 1})),
        "weights npz": ("w.npz", lambda path: save_weights(path, weights)),
        "weights safetensors": ("w.safetensors", lambda path: save_weights(path, weights)),
    }


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


@pytest.mark.parametrize("writer", sorted(_writers()))
def test_written_files_follow_the_umask_and_leave_no_temporary(writer, tmp_path, umask_022):
    if writer == "weights safetensors":
        pytest.importorskip("safetensors")
    name, write = _writers()[writer]
    path = tmp_path / name
    write(str(path))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert sorted(os.listdir(tmp_path)) == [name]


def test_a_failed_write_keeps_the_old_file_and_removes_its_temporary(tmp_path):
    path = tmp_path / "summary.json"
    path.write_text(json.dumps({"old": True}))

    def fail_halfway(stream):
        stream.write(b'{"new": ')
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        atomic.atomic_write(str(path), fail_halfway)
    assert json.loads(path.read_text()) == {"old": True}
    assert sorted(os.listdir(tmp_path)) == ["summary.json"]


def test_a_failed_named_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "w.safetensors"
    path.write_bytes(b"old")

    def fail(temporary):
        with open(temporary, "wb") as handle:
            handle.write(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        atomic.atomic_write_named(str(path), fail)
    assert path.read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["w.safetensors"]
