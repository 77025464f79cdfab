"""The run directory under kill -9, a second writer, a full disk and bad paths: nothing lost.

Processes are real (``subprocess``) where the kernel's behaviour is the point:
the lock is an ``flock`` that dies with its process, and a SIGKILL in the
middle of a checkpoint write must leave the previous checkpoint readable. A
full disk is a monkeypatched stream whose ``write`` raises ENOSPC once a byte
budget is spent, as a real disk filling up would.
"""
import argparse
import errno
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from hostile.archives import write_tiny_mnist
from se_numpy.data import SyntheticConfig, make_synthetic
from se_numpy import atomic
from se_numpy.train import Trainer, TrainConfig
from se_numpy.train.checkpoint import read_meta, save_checkpoint
from se_numpy.train.cli import add_commands
from se_numpy.train.commands import run_training
from se_numpy.train.run_lock import RunDirectoryBusy, RunDirectoryLock
from se_numpy.train.trainer import CheckpointWriteError

RUN_LOCK_FILE = os.path.join(os.path.dirname(atomic.__file__), "train", "run_lock.py")
TINY = dict(model="tiny_resnet", data="synthetic:4", batch_size=32, backend="numpy", seed=1)


@pytest.fixture(scope="module")
def tiny_data():
    return make_synthetic(4, SyntheticConfig(train_size=32, test_size=16))


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory):
    return write_tiny_mnist(tmp_path_factory.mktemp("mnist"))


def _trainer(run_dir, data, epochs=1, **changes):
    return Trainer(TrainConfig(**{**TINY, "epochs": epochs, **changes}), str(run_dir),
                   quiet=True, dataset=data)


def _wait_for(path, seconds=60):
    deadline = time.monotonic() + seconds
    while not os.path.exists(path):
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


# ----------------------------------------------------------------------------- the lock
HOLD_LOCK = """
import importlib.util, sys, time
spec = importlib.util.spec_from_file_location("run_lock", sys.argv[1])
run_lock = importlib.util.module_from_spec(spec); spec.loader.exec_module(run_lock)
with run_lock.RunDirectoryLock(sys.argv[2]):
    open(sys.argv[3], "w").close()
    time.sleep(120)
"""


def test_a_second_training_refuses_and_sigkill_releases_the_lock(tmp_path, tiny_data):
    run_dir, ready = tmp_path / "run", tmp_path / "ready"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, RUN_LOCK_FILE, str(run_dir),
                               str(ready)])
    try:
        _wait_for(ready)
        with pytest.raises(RunDirectoryBusy, match=rf"{run_dir} is in use by another training "
                                                   rf"\(process {holder.pid}\)"):
            _trainer(run_dir, tiny_data).fit()
        assert not (run_dir / "checkpoint.npz").exists()     # refused before writing anything
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # the kernel dropped the lock with the process: no stale pid file blocks the next run
    _trainer(run_dir, tiny_data).fit()
    assert read_meta(str(run_dir / "checkpoint.npz"))["epoch"] == 1


def test_two_trainings_on_one_out_never_both_write(tmp_path, mnist_dir):
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "se_numpy", "train", "--model", "tiny_resnet", "--data",
               f"mnist:{mnist_dir}", "--batch-size", "8", "--epochs", "1", "--backend", "numpy",
               "--quiet", "--out", str(run_dir)]
    processes = [subprocess.Popen(command + ["--seed", str(seed)], stderr=subprocess.PIPE,
                                  text=True) for seed in (11, 22)]
    results = [(process.wait(timeout=300), process.stderr.read()) for process in processes]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    winner = (11, 22)[[code for code, _ in results].index(0)]
    loser_message = next(err for code, err in results if code == 2).strip()
    # refused either while the winner trains (the lock) or after it (the checkpoint exists)
    assert len(loser_message.splitlines()) == 1
    assert "in use by another training" in loser_message or "pass --resume" in loser_message
    assert json.loads((run_dir / "config.json").read_text())["seed"] == winner
    assert read_meta(str(run_dir / "checkpoint.npz"))["config"]["seed"] == winner


def test_the_lock_is_reentrant_in_one_process(tmp_path):
    with RunDirectoryLock(str(tmp_path)):
        with RunDirectoryLock(str(tmp_path)):
            pass
        assert (tmp_path / ".lock").read_text().strip() == str(os.getpid())


# ----------------------------------------------------------------------------- kill -9
KILLED_WRITER = """
import json, os, sys, time
import numpy as np
from se_numpy import atomic
from se_numpy.train.checkpoint import save_checkpoint
path, ready, meta = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
real_open = atomic.open_temporary

class Stalls:
    # passes writes through; after the first kilobyte, announces itself and stalls
    def __init__(self, stream):
        self.stream, self.written = stream, 0
    def write(self, data):
        count = self.stream.write(data)
        self.written += count
        if self.written > 1024:
            self.stream.flush()
            open(ready, "w").close()
            time.sleep(120)
        return count
    def __getattr__(self, name):
        return getattr(self.stream, name)
    def __enter__(self):
        return self
    def __exit__(self, *exc_info):
        return self.stream.__exit__(*exc_info)

def stalling_open(target):
    temporary, stream = real_open(target)
    return temporary, Stalls(stream)

atomic.open_temporary = stalling_open
save_checkpoint(path, {"w": np.full(100_000, 2.0)}, {}, {**meta, "epoch": 1})
"""


def _meta(epochs=1):
    config = TrainConfig(**{**TINY, "epochs": epochs}).to_dict()
    return {"epoch": 0, "config": config, "history": [], "rng_state": "{}",
            "normalization": {"mean": [0.5], "std": [0.25]}, "dataset": {}}


def test_sigkill_during_a_checkpoint_write_keeps_the_old_one(tmp_path, tiny_data):
    path, ready = tmp_path / "checkpoint.npz", tmp_path / "ready"
    save_checkpoint(str(path), {"w": np.ones(3)}, {}, _meta())
    before = path.read_bytes()
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path), str(ready),
                               json.dumps(_meta())])
    try:
        _wait_for(ready)
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    assert path.read_bytes() == before and read_meta(str(path))["epoch"] == 0
    leftovers = [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]
    assert len(leftovers) == 1 and leftovers[0].startswith(".checkpoint.npz.")
    # an older version's mkstemp leftover is recognised too
    (tmp_path / ".checkpoint-abc123.npz.tmp").write_bytes(b"partial")
    _trainer(tmp_path, tiny_data, epochs=0).fit()      # the next start in that directory
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]


# ----------------------------------------------------------------------------- full disk
class FullDisk:
    """Replaces ``atomic.open_temporary``: writes fail with ENOSPC once ``budget`` bytes are
    spent (``budget=0`` for names matching ``only``: that file fails at once)."""

    def __init__(self, monkeypatch, budget, only=None):
        self.budget, self.only = budget, only
        self.real = atomic.open_temporary
        monkeypatch.setattr(atomic, "open_temporary", self.open)

    def open(self, path):
        temporary, stream = self.real(path)
        disk = self
        failing = self.only is not None and path.endswith(self.only)

        class Stream:
            def write(self, data):
                if failing or len(data) > disk.budget:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                disk.budget -= len(data)
                return stream.write(data)

            def __getattr__(self, name):
                return getattr(stream, name)

            def __enter__(self):
                return self

            def __exit__(self, *exc_info):
                return stream.__exit__(*exc_info)
        return temporary, Stream()


def test_a_full_disk_keeps_the_previous_checkpoint_and_metrics(tmp_path, tiny_data, monkeypatch):
    trainer = _trainer(tmp_path, tiny_data, epochs=2)
    trainer.fit(stop_after=1)
    checkpoint, metrics = (tmp_path / "checkpoint.npz").read_bytes(), \
        (tmp_path / "metrics.jsonl").read_text()
    FullDisk(monkeypatch, budget=10_000)      # config.json fits, a checkpoint does not
    with pytest.raises(CheckpointWriteError,
                       match=rf"^cannot write {tmp_path}/checkpoint\.npz: No space left on "
                             r"device; the checkpoint of epoch 1 is intact$"):
        trainer.fit()
    assert (tmp_path / "checkpoint.npz").read_bytes() == checkpoint
    assert (tmp_path / "metrics.jsonl").read_text() == metrics and metrics.count("\n") == 1
    assert trainer.epoch == 1 and len(trainer.history) == 1
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]


def test_a_failed_metrics_rewrite_leaves_the_old_metrics(tmp_path, tiny_data, monkeypatch):
    trainer = _trainer(tmp_path, tiny_data, epochs=2)
    trainer.fit(stop_after=1)
    metrics = (tmp_path / "metrics.jsonl").read_text()
    FullDisk(monkeypatch, budget=10**9, only="metrics.jsonl")
    with pytest.raises(CheckpointWriteError, match=r"metrics\.jsonl: No space left on device"):
        trainer.fit()
    assert (tmp_path / "metrics.jsonl").read_text() == metrics      # not emptied
    assert read_meta(str(tmp_path / "checkpoint.npz"))["epoch"] == 2  # the history is there


def _cli(argv):
    parser = argparse.ArgumentParser(prog="se-numpy")
    add_commands(parser.add_subparsers(dest="command", required=True))
    parsed = parser.parse_args(argv)
    return parsed.func(parsed)


def test_a_full_disk_is_one_line_from_the_command(tmp_path, mnist_dir, monkeypatch, capsys):
    FullDisk(monkeypatch, budget=0)
    code = _cli(["train", "--model", "tiny_resnet", "--data", f"mnist:{mnist_dir}",
                 "--epochs", "1", "--backend", "numpy", "--quiet",
                 "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"se-numpy train: error: cannot write {tmp_path}/run/config.json: "
                          "No space left on device")


@pytest.mark.parametrize("out, match", [
    ("file", r"run directory .*/file exists and is not a directory"),
    ("x" * 300, r"cannot use run directory .*: File name too long"),
])
def test_bad_out_paths_are_one_line(tmp_path, mnist_dir, capsys, out, match):
    (tmp_path / "file").write_text("not a directory")
    code = _cli(["train", "--data", f"mnist:{mnist_dir}", "--epochs", "1",
                 "--backend", "numpy", "--quiet", "--out", str(tmp_path / out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("se-numpy train: error: ")
    assert re.search(match, err), err


def test_permission_denied_keeps_the_checkpoint(tmp_path, tiny_data, monkeypatch):
    trainer = _trainer(tmp_path, tiny_data, epochs=2)
    trainer.fit(stop_after=1)
    before = (tmp_path / "checkpoint.npz").read_bytes()

    def refuse(path):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
    monkeypatch.setattr(atomic, "open_temporary", refuse)
    with pytest.raises(CheckpointWriteError, match=r"config\.json: Permission denied; the "
                                                   r"checkpoint of epoch 1 is intact"):
        trainer.fit()
    assert (tmp_path / "checkpoint.npz").read_bytes() == before


def test_files_of_a_run_are_created_with_the_umask(tmp_path, tiny_data):
    previous = os.umask(0o022)
    try:
        _trainer(tmp_path, tiny_data, epochs=0).fit()
    finally:
        os.umask(previous)
    modes = {name: os.stat(tmp_path / name).st_mode & 0o777 for name in os.listdir(tmp_path)}
    assert modes == {"checkpoint.npz": 0o644, "config.json": 0o644, ".lock": 0o644}


def test_run_training_holds_the_lock_around_the_whole_run(tmp_path, mnist_dir, monkeypatch):
    seen = []
    real_fit = Trainer.fit

    def fit(self, *args, **kwargs):
        # inside fit, another process could not take the lock: the in-process table says held
        from se_numpy.train import run_lock
        seen.append(os.path.realpath(self.run_dir) in run_lock._held)
        return real_fit(self, *args, **kwargs)
    monkeypatch.setattr(Trainer, "fit", fit)
    run_training({**TINY, "data": f"mnist:{mnist_dir}", "epochs": 0}, str(tmp_path), quiet=True)
    assert seen == [True]
