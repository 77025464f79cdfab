"""One run of an ablation: one training of one variant with one seed, in its own directory.

A run is described by a plain dict (a ``RunSpec``'s ``to_dict``) so it can be
sent to another process or a Dask worker. Its directory name ends in a hash of
everything that decides the result (model, variant options, training config),
so the same run asked for by two tables, or by a rerun, lands in the same
place, and a changed budget never mixes with an old one:

    OUT/runs/<model>-seed<k>-<hash>/
        config.json        the TrainConfig (written by the trainer)
        variant.json       model name and SE options of the variant
        checkpoint.npz     written after every epoch (a killed run resumes here)
        metrics.jsonl      per-epoch metrics
        result.json        written last, atomically: the run is finished

The result depends only on the spec: ``execute_run`` holds BLAS and Numba to
one thread, and the data set is rebuilt from its seed (or read from disk), so
a run gives the same bits in any process, with any number of workers, on any
Dask worker with the same software.
"""
import hashlib
import json
import os
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..atomic import atomic_write

RESULT_NAME = "result.json"
VARIANT_NAME = "variant.json"
# one training at a time per process: a Dask worker started with several threads would
# otherwise run trainings side by side, sharing the process-wide BLAS limit and the
# kernel backend switch (use one single-threaded worker per core instead)
_TRAINING_LOCK = threading.Lock()


@dataclass(frozen=True)
class RunSpec:
    """Everything one run needs: the model to build and the training settings.

    model: registry name (the plain net when ``options`` is None);
    options: SE options for ``sn.models.create`` or None; train: a TrainConfig dict.
    """

    variant: str
    model: str
    options: dict
    train: dict

    def to_dict(self):
        return {"variant": self.variant, "model": self.model, "options": self.options,
                "train": self.train}

    @property
    def key(self):
        """Hash of what decides the result (not the variant's display name)."""
        text = json.dumps({"model": self.model, "options": self.options, "train": self.train},
                          sort_keys=True, default=list)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def directory_name(self):
        """``MODEL-seedK-HASH``: from what decides the result only, never from the row's
        name, so the baseline asked for as "avg" by one table and "SE" by another is
        found in one place (the name is in ``variant.json``)."""
        return f"{self.model}-seed{self.train['seed']}-{self.key}"


def write_json_atomically(path, value):
    """Write JSON to a temporary file in the same directory, then rename it into place."""
    atomic_write(path, lambda stream: stream.write((json.dumps(value, indent=2) + "\n").encode()))


def read_result(run_dir, key):
    """The finished run's result, or None if the run has not finished (or is another run's)."""
    path = os.path.join(run_dir, RESULT_NAME)
    if not os.path.isfile(path):
        return None
    with open(path) as handle:
        result = json.load(handle)
    return result if result.get("key") == key else None


def weights_digest(model):
    """SHA-256 of every parameter and buffer, in state-dict order: equal bits, equal digest."""
    digest = hashlib.sha256()
    for name, value in model.state_dict().items():
        array = np.ascontiguousarray(value)
        digest.update(name.encode())
        digest.update(str(array.dtype).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


@contextmanager
def limit_threads():
    """Hold this process's BLAS to one thread, and Numba to one thread in the calling thread.

    BLAS limits (threadpoolctl) are process-wide; Numba's thread count is per
    calling thread, which is what a Dask worker thread needs. Both are restored
    on exit.
    """
    import numba
    from threadpoolctl import threadpool_limits
    numba_threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        numba.set_num_threads(numba_threads)


@lru_cache(maxsize=2)
def _dataset(spec, train_limit=None, test_limit=None):
    from ..data.registry import load_dataset
    try:
        return load_dataset(spec, train_limit, test_limit)
    except (OSError, ValueError) as error:
        raise RuntimeError(
            f"data {spec!r} is not readable on {socket.gethostname()}: {error}. A data set on "
            "disk must exist at the same path on every machine that runs ablation runs "
            "(the embedded 'synthetic' set is rebuilt from its seed instead).") from None


def build_trainer(spec, run_dir, quiet=True):
    """A ``Trainer`` for ``spec`` whose model is the variant (the trainer's own config
    names only the registry model, so the variant's options are applied here)."""
    from .. import models
    from ..optim.groups import param_groups
    from ..optim.sgd import SGD
    from ..train import TrainConfig, Trainer

    config = TrainConfig.from_dict(spec.train)
    dataset = _dataset(config.data, config.train_limit, config.test_limit)
    trainer = Trainer(config, run_dir, quiet=quiet, dataset=dataset)
    trainer.model = models.create(spec.model, in_channels=dataset.image_shape[0],
                                  num_classes=dataset.num_classes,
                                  dtype=np.dtype(config.dtype).type, seed=config.seed,
                                  **(spec.options or {}))
    groups = (param_groups(trainer.model, config.weight_decay, config.no_decay_bn_bias)
              if config.no_decay_bn_bias else trainer.model.parameters())
    trainer.optimizer = SGD(groups, lr=config.lr, momentum=config.momentum,
                            nesterov=config.nesterov, weight_decay=config.weight_decay)
    return trainer


def run_directory(spec, out_dir):
    return os.path.join(out_dir, "runs", spec.directory_name)


def finished_result(spec_dict, out_dir):
    """The result of a finished run of ``spec_dict`` in ``out_dir`` (trained=False), or None."""
    spec = RunSpec(**spec_dict)
    run_dir = run_directory(spec, out_dir)
    finished = read_result(run_dir, spec.key)
    # where it is now (the output directory may have been moved since), under this name
    return None if finished is None else dict(finished, trained=False, run_dir=run_dir,
                                              variant=spec.variant)


def execute_run(spec_dict, out_dir):
    """Run (or finish, or just read) one run; returns its result dict.

    A finished run (``result.json`` with the same key) is read, not retrained.
    A run with a checkpoint but no result (killed) continues from the checkpoint,
    which the trainer restores bit for bit. ``result["trained"]`` says whether
    this call trained anything.
    """
    finished = finished_result(spec_dict, out_dir)
    if finished is not None:
        return finished
    spec = RunSpec(**spec_dict)
    run_dir = run_directory(spec, out_dir)
    with _TRAINING_LOCK, limit_threads():
        start = time.perf_counter()
        trainer = build_trainer(spec, run_dir)
        resumed_from = 0
        if os.path.isfile(trainer.checkpoint_path):
            resumed_from = int(trainer.restore()["epoch"])
        os.makedirs(run_dir, exist_ok=True)
        write_json_atomically(os.path.join(run_dir, VARIANT_NAME),
                              {"variant": spec.variant, "model": spec.model,
                               "options": spec.options})
        history = trainer.fit()
        seconds = time.perf_counter() - start
    last = history[-1]
    # machine time of the whole run, including epochs trained before an interruption
    train_seconds = float(sum(row["seconds"] for row in history))
    result = {"key": spec.key, "variant": spec.variant, "seed": spec.train["seed"],
              "run_dir": run_dir, "test_error": 100.0 * (1.0 - last["test_accuracy"]),
              "test_accuracy": last["test_accuracy"], "train_accuracy": last["train_accuracy"],
              "epochs": last["epoch"], "resumed_from_epoch": resumed_from,
              "seconds": train_seconds, "call_seconds": seconds,
              "weights_sha256": weights_digest(trainer.model), "host": socket.gethostname()}
    write_json_atomically(os.path.join(run_dir, RESULT_NAME), result)
    return dict(result, trained=True)
