"""What ``se-numpy train`` and ``se-numpy evaluate`` do, as plain functions of their options."""
import os

import numpy as np

from ..data.registry import load_dataset
from ..kernels.backend import use_backend
from .checkpoint import expected_state, load_model_state, read_meta
from .config import TrainConfig
from .run_lock import RunDirectoryLock
from .trainer import CHECKPOINT_NAME, Trainer, build_model, evaluate

# settings that may change when a run is resumed: more epochs, another backend
RESUMABLE_CHANGES = ("epochs", "backend")


def fastest_cpu_backend():
    """``numba`` where it compiles and runs here (about 2.5x faster for the small nets,
    docs/training.md), else ``numpy``."""
    try:
        with use_backend("numba"):
            pass
    except RuntimeError:
        return "numpy"
    return "numba"


def config_for_run(options, run_dir, resume):
    """The run's ``TrainConfig``: command-line ``options`` (None = not given) over the defaults,
    or over the checkpoint's saved config when resuming.

    Resuming with a different model, data set, lr, ... would not continue the same
    run, so such a change is refused with the list of differences.
    """
    given = {key: value for key, value in options.items() if value is not None}
    checkpoint_path = os.path.join(run_dir, CHECKPOINT_NAME)
    if resume and os.path.exists(checkpoint_path):
        saved = read_meta(checkpoint_path)["config"]
        conflicts = [f"{key}: saved {saved[key]!r}, given {value!r}" for key, value in given.items()
                     if key not in RESUMABLE_CHANGES and saved.get(key) != value]
        if conflicts:
            raise ValueError(f"--resume from {checkpoint_path}: these options differ from the "
                             "saved run (only " + ", ".join(RESUMABLE_CHANGES)
                             + " may change): " + "; ".join(conflicts))
        return TrainConfig.from_dict({**saved, **given}), checkpoint_path
    if resume:
        raise FileNotFoundError(f"--resume: no checkpoint at {checkpoint_path}")
    return TrainConfig(**given), None


def run_training(options, run_dir, resume=False, quiet=False, log=print):
    """Train (or continue) a run; returns the Trainer after ``fit``.

    The run directory stays locked from reading the old checkpoint to the
    last write, so a second training into it refuses instead of interleaving.
    """
    with RunDirectoryLock(run_dir):
        config, checkpoint_path = config_for_run(options, run_dir, resume)
        trainer = Trainer(config, run_dir, quiet=quiet, log=log)
        if checkpoint_path is not None:
            trainer.restore(checkpoint_path)
            log(f"resumed {run_dir} after epoch {trainer.epoch}")
        elif os.path.exists(trainer.checkpoint_path):
            raise FileExistsError(f"{trainer.checkpoint_path} exists: pass --resume to continue "
                                  "that run, or choose another --out")
        trainer.fit()
    return trainer


def resolve_checkpoint(path):
    """A run directory or a checkpoint file -> the checkpoint file."""
    if os.path.isdir(path):
        path = os.path.join(path, CHECKPOINT_NAME)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no checkpoint at {path} (expected a run directory holding "
                                f"{CHECKPOINT_NAME}, or the file itself)")
    return path


def run_evaluation(path, data=None, backend=None, batch_size=256):
    """Evaluate a saved model on the test split of ``data`` (default: the data it trained on).

    Images are normalised with the *training* statistics stored in the checkpoint.
    Returns a dict with the checkpoint path, data, epoch, test loss and accuracy.
    """
    path = resolve_checkpoint(path)
    meta = read_meta(path)
    config = TrainConfig.from_dict(meta["config"])
    if backend is not None:
        config.backend = backend
    use_backend(config.backend)
    data_spec = data or config.data
    dataset = load_dataset(data_spec, train_limit=None,
                           test_limit=config.test_limit if data is None else None)
    model = build_model(config, dataset)
    try:
        model_state, _ = load_model_state(path, expected_state(model.state_dict()))
        model.load_state_dict(model_state)
    except ValueError as error:
        raise ValueError(f"{path}: the saved {config.model} does not fit data {data_spec!r} "
                         f"({dataset.num_classes} classes, {dataset.image_shape[0]} channels): "
                         f"{str(error).removeprefix(f'{path}: ')}") from None
    mean = np.array(meta["normalization"]["mean"])
    std = np.array(meta["normalization"]["std"])
    if mean.shape[0] != dataset.image_shape[0]:
        raise ValueError(f"{path}: trained on {mean.shape[0]}-channel images, data {data_spec!r} "
                         f"has {dataset.image_shape[0]} channels")
    loss, accuracy = evaluate(model, dataset.test_images, dataset.test_labels, mean, std,
                              batch_size=batch_size, dtype=np.dtype(config.dtype).type)
    return {"checkpoint": path, "data": data_spec, "model": config.model,
            "epoch": int(meta["epoch"]), "test_loss": loss, "test_accuracy": accuracy,
            "test_images": int(dataset.test_images.shape[0])}
