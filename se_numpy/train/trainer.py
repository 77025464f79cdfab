"""``Trainer``: epochs of SGD over mini-batches, evaluation, metrics and checkpoints.

    trainer = Trainer(TrainConfig(model="se_resnet20", epochs=10), run_dir="runs/se20")
    history = trainer.fit()                 # list of per-epoch metric dicts

One training step is the whole of backpropagation, written out:

    logits = model(x)                        # forward, every layer caches what it needs
    loss = loss_fn(logits, labels)           # mean softmax cross-entropy
    model.zero_grad()
    model.backward(loss_fn.backward())       # dL/dlogits flows back, filling p.grad
    optimizer.step()                         # p -= lr · (momentum-filtered) gradient

After every epoch the trainer evaluates on the test split, writes
``RUN_DIR/checkpoint.npz`` and adds a line to ``RUN_DIR/metrics.jsonl`` (each
file replaced atomically, see se_numpy/atomic.py; the directory is locked while a run
writes to it, see run_lock.py). If the loss
becomes NaN or infinite the run stops with ``TrainingDiverged``; the
checkpoint of the last completed epoch is left untouched.
"""
import json
import os
import sys
import time
import warnings

import numpy as np

from ..data.loader import BatchLoader
from ..data.registry import load_dataset
from .. import nn
from ..kernels.backend import use_backend
from ..nn.loss import CrossEntropyLoss
from ..optim.groups import param_groups
from ..optim.schedules import make_schedule
from ..optim.sgd import SGD
from ..atomic import atomic_write, remove_stale_temporaries
from .checkpoint import (expected_state, generator_from_json, generator_state_to_json,
                         load_checkpoint, save_checkpoint)
from .run_lock import RunDirectoryLock

CHECKPOINT_NAME = "checkpoint.npz"
METRICS_NAME = "metrics.jsonl"
CONFIG_NAME = "config.json"
MAX_REPORTED_WARNINGS = 3


class TrainingDiverged(RuntimeError):
    """The training loss, the weights or BatchNorm's running statistics became NaN or infinite."""


class CheckpointWriteError(RuntimeError):
    """A file of the run could not be written (full disk, permission); the old one is intact."""


def build_model(config, dataset):
    """The model named in ``config``, sized for ``dataset`` (channels and classes)."""
    from .. import models
    options = dict(in_channels=dataset.image_shape[0], num_classes=dataset.num_classes,
                   dtype=np.dtype(config.dtype).type, seed=config.seed)
    if config.reduction is not None:
        options["reduction"] = config.reduction
    return models.create(config.model, **options)


def evaluate(model, images, labels, mean, std, batch_size=256, dtype=np.float32):
    """Mean cross-entropy and accuracy of ``model`` (in eval mode) on uint8 images.

    Returns ``(loss, accuracy)`` as floats. BatchNorm uses its running
    statistics, so the result does not depend on the batch size.
    """
    was_training = model.training
    model.eval()
    loss_fn = CrossEntropyLoss()
    total_loss, correct = 0.0, 0
    for x, y in BatchLoader(images, labels, batch_size, mean, std, dtype=dtype):
        logits = model(x)
        if not np.all(np.isfinite(logits)):
            model.train(was_training)
            raise TrainingDiverged("the model outputs non-finite logits (NaN or inf weights)")
        total_loss += float(loss_fn(logits, y)) * len(y)
        correct += int(np.sum(logits.argmax(axis=1) == y))
    model.train(was_training)
    count = max(1, len(labels))
    return total_loss / count, correct / count


def _progress(iterable, total, description, quiet):
    """A tqdm bar on an interactive terminal; the plain iterable otherwise."""
    if quiet or not sys.stderr.isatty():
        return iterable
    from tqdm import tqdm
    return tqdm(iterable, total=total, desc=description, leave=False, dynamic_ncols=True)


class Trainer:
    """Train ``config.model`` on ``config.data``, writing metrics and checkpoints to ``run_dir``.

    Args:
        config: a ``TrainConfig``.
        run_dir: directory for ``checkpoint.npz``, ``metrics.jsonl`` and ``config.json``.
        quiet: no progress bar and no per-epoch lines.
        dataset: an ``ImageDataset`` to use instead of loading ``config.data``
            (the demo shares one data set between two runs).
        log: where per-epoch lines go (a function taking a string).
    """

    def __init__(self, config, run_dir, quiet=False, dataset=None, log=print):
        self.config, self.run_dir, self.quiet = config, run_dir, quiet
        self.log = (lambda message: None) if quiet else log
        use_backend(config.backend)
        dataset = (dataset if dataset is not None       # only the images the limits keep are made
                   else load_dataset(config.data, config.train_limit, config.test_limit))
        if config.train_limit is not None or config.test_limit is not None:
            dataset = dataset.subset(config.train_limit, config.test_limit)
        for split in ("train", "test"):
            if getattr(dataset, f"{split}_images").shape[0] == 0:
                raise ValueError(f"data {config.data!r}: the {split} split holds no images")
        self.dataset = dataset
        self.mean, self.std = dataset.channel_mean_std()
        self.dtype = np.dtype(config.dtype).type
        self.model = build_model(config, dataset)
        groups = (param_groups(self.model, config.weight_decay, config.no_decay_bn_bias)
                  if config.no_decay_bn_bias else self.model.parameters())
        self.optimizer = SGD(groups, lr=config.lr, momentum=config.momentum,
                             nesterov=config.nesterov, weight_decay=config.weight_decay)
        self.loss_fn = CrossEntropyLoss()
        # one stream of randomness for the data order and augmentation; the model's
        # initialisation uses config.seed separately (inside the model builder)
        self.rng = np.random.default_rng(np.random.SeedSequence([config.seed, 1]))
        augment = config.augment if config.augment is not None else dataset.name.startswith("cifar")
        self.train_loader = BatchLoader(dataset.train_images, dataset.train_labels,
                                        config.batch_size, self.mean, self.std, shuffle=True,
                                        augment=augment, rng=self.rng, dtype=self.dtype)
        steps_per_epoch = len(self.train_loader)
        per_iteration = config.schedule_unit == "iteration"
        total = config.epochs * (steps_per_epoch if per_iteration else 1)
        # warm-up and schedule both count in schedule_unit (iterations or epochs)
        self.schedule = make_schedule(config.schedule, max(1, total), warmup_steps=config.warmup)
        self.epoch = 0              # epochs completed
        self.history = []           # one metrics dict per completed epoch
        self._saved_epoch = None    # epoch of the checkpoint on disk, if any

    # ------------------------------------------------------------------ paths
    @property
    def checkpoint_path(self):
        return os.path.join(self.run_dir, CHECKPOINT_NAME)

    @property
    def metrics_path(self):
        return os.path.join(self.run_dir, METRICS_NAME)

    # ------------------------------------------------------------------ checkpoints
    def save(self):
        """Write the state after ``self.epoch`` completed epochs (atomically)."""
        meta = {"epoch": self.epoch, "config": self.config.to_dict(),
                "rng_state": generator_state_to_json(self.rng), "history": self.history,
                "normalization": {"mean": self.mean.tolist(), "std": self.std.tolist()},
                "dataset": {"name": self.dataset.name,
                            "class_names": list(self.dataset.class_names)}}
        self._write(self.checkpoint_path, lambda: save_checkpoint(
            self.checkpoint_path, self.model.state_dict(), self.optimizer.state_dict(), meta))

    def _write(self, path, write):
        """Run ``write``; a failed write (full disk ...) becomes one clear line."""
        try:
            write()
        except OSError as error:
            kept = (f"the checkpoint of epoch {self._saved_epoch} is intact"
                    if self._saved_epoch is not None else "no checkpoint was written")
            raise CheckpointWriteError(f"cannot write {path}: {error.strerror or error}; "
                                       f"{kept}") from None
        if path == self.checkpoint_path:
            self._saved_epoch = self.epoch

    def checkpoint_layout(self):
        """What this run's checkpoint must hold: ``(model, optimizer, optional)`` name -> (shape, dtype)."""
        optimizer = expected_state(self.optimizer.state_dict())
        buffers = {f"momentum_buffer.{index}": (p.data.shape, p.data.dtype)
                   for index, p in enumerate(p for group in self.optimizer.param_groups
                                             for p in group["params"])}
        return expected_state(self.model.state_dict()), {**optimizer, **buffers}, tuple(buffers)

    def restore(self, path=None):
        """Continue from a checkpoint (default: this run's): model, optimiser, RNG, epoch.

        Every entry is checked against this model and optimiser before it is read.
        """
        path = path or self.checkpoint_path
        model_expected, optimizer_expected, optional = self.checkpoint_layout()
        model_state, optimizer_state, meta = load_checkpoint(path, model_expected,
                                                             optimizer_expected, optional)
        try:
            self.model.load_state_dict(model_state)
            self.optimizer.load_state_dict(optimizer_state)
            restored = generator_from_json(meta["rng_state"])
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{path}: {str(error)[:300]}") from None
        # the loader holds a reference to self.rng: copy the state in rather than rebind
        self.rng.bit_generator.state = restored.bit_generator.state
        self.epoch = self._saved_epoch = int(meta["epoch"])
        self.history = list(meta["history"])
        return meta

    def _write_metrics(self):
        text = "".join(json.dumps(row) + "\n" for row in self.history)
        self._write(self.metrics_path, lambda: atomic_write(
            self.metrics_path, lambda stream: stream.write(text.encode())))

    def _write_config(self):
        path = os.path.join(self.run_dir, CONFIG_NAME)
        text = json.dumps(self.config.to_dict(), indent=2) + "\n"
        self._write(path, lambda: atomic_write(path, lambda stream: stream.write(text.encode())))

    # ------------------------------------------------------------------ training
    def _set_learning_rate(self, iteration):
        unit_step = iteration if self.config.schedule_unit == "iteration" else self.epoch
        self.optimizer.set_lr(self.schedule.factor(unit_step))

    def _diverged(self, loss, batch_index, event=None):
        """Stop: ``event`` says what became non-finite (default: the training loss)."""
        event = event or f"training loss became {loss}"
        raise TrainingDiverged(
            f"{event} at epoch {self.epoch + 1}, batch {batch_index + 1} "
            f"(lr {self.optimizer.param_groups[0]['lr']:.4g}); stopping. The last good "
            f"checkpoint (epoch {self.epoch}) is kept at {self.checkpoint_path}. "
            "Try a smaller --lr or a warm-up.")

    def train_one_epoch(self):
        """One pass over the training set; returns (mean loss, accuracy)."""
        self.model.train()
        steps = len(self.train_loader)
        total_loss, correct, seen = 0.0, 0, 0
        batches = _progress(self.train_loader, steps, f"epoch {self.epoch + 1}", self.quiet)
        # the images need no gradient: the convolutions that read them skip dx
        with nn.data_gradient_skipped(self.model):
            for batch_index, (x, y) in enumerate(batches):
                self._set_learning_rate(self.epoch * steps + batch_index)
                logits, loss = self._train_step(x, y, batch_index)
                total_loss += loss * len(y)
                correct += int(np.sum(logits.argmax(axis=1) == y))
                seen += len(y)
                if hasattr(batches, "set_postfix"):
                    batches.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{correct / seen:.3f}")
        return total_loss / max(1, seen), correct / max(1, seen)

    def _train_step(self, x, y, batch_index):
        """Forward, loss, backward and the optimiser's step on one batch; -> (logits, loss)."""
        logits = self.model(x)
        # the loss refuses non-finite logits, so check them first: either way it
        # is the same event (the weights blew up) and gets the same clear stop
        if not np.all(np.isfinite(logits)):
            self._diverged("nan (non-finite logits)", batch_index)
        loss = float(self.loss_fn(logits, y))
        if not np.isfinite(loss):
            self._diverged(loss, batch_index)
        self.model.zero_grad()
        self.model.backward(self.loss_fn.backward())
        self.optimizer.step()
        return logits, loss

    def _non_finite_state(self):
        """Names of parameters and buffers (BatchNorm's running statistics) with NaN/inf."""
        return [name for name, value in self.model.state_dict().items()
                if value.dtype.kind == "f" and not np.all(np.isfinite(value))]

    def _train_and_check_epoch(self):
        """One epoch, then the checks that keep a broken state out of the checkpoint."""
        train_loss, train_accuracy = self.train_one_epoch()
        last_batch = len(self.train_loader) - 1
        # the last step can leave NaN/inf weights behind a finite loss, and a huge
        # input can push BatchNorm's running variance to inf while every weight
        # stays finite; such a state must never overwrite the last good checkpoint
        broken = self._non_finite_state()
        if broken:
            parameters = dict(self.model.named_parameters())
            what = ("the weights" if any(name in parameters for name in broken)
                    else "BatchNorm's running statistics")
            self._diverged(None, last_batch, f"{what} became non-finite after the last step "
                           f"({', '.join(broken[:3])}{' ...' if len(broken) > 3 else ''})")
        try:
            test_loss, test_accuracy = evaluate(self.model, self.dataset.test_images,
                                                self.dataset.test_labels, self.mean,
                                                self.std, dtype=self.dtype)
        except TrainingDiverged:
            self._diverged("nan (non-finite test logits)", last_batch)
        return train_loss, train_accuracy, test_loss, test_accuracy

    def _epoch_with_warnings(self):
        """``_train_and_check_epoch``, with the RuntimeWarnings NumPy gives on the way
        (overflow, invalid value) folded into a divergence message; without a
        divergence they are shown as usual, once each."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                result, diverged = self._train_and_check_epoch(), None
            except TrainingDiverged as error:
                result, diverged = None, error
        distinct = {}
        for record in caught:
            distinct.setdefault((str(record.message), record.category, record.filename,
                                 record.lineno), record)
        if diverged is not None:
            runtime = [record for record in distinct.values()
                       if issubclass(record.category, RuntimeWarning)]
            if runtime:
                folded = "; ".join(f"{record.message} ({os.path.basename(record.filename)}:"
                                   f"{record.lineno})" for record in runtime[:MAX_REPORTED_WARNINGS])
                diverged = TrainingDiverged(f"{diverged} Preceded by RuntimeWarning: {folded}"
                                            + (" ..." if len(runtime) > MAX_REPORTED_WARNINGS
                                               else ""))
            raise diverged
        for record in distinct.values():
            warnings.warn_explicit(record.message, record.category, record.filename,
                                   record.lineno)
        return result

    def fit(self, stop_after=None):
        """Train until ``config.epochs`` epochs are complete; returns the history.

        ``stop_after`` ends early after that many epochs (as an interruption
        would): the schedule still follows ``config.epochs``, so resuming later
        continues the very same run. The run directory is locked for the
        duration (``run_lock.py``); temporary files a killed run left are
        removed first.
        """
        last_epoch = self.config.epochs if stop_after is None else min(stop_after,
                                                                        self.config.epochs)
        use_backend(self.config.backend)
        with RunDirectoryLock(self.run_dir):
            remove_stale_temporaries(self.run_dir, (CHECKPOINT_NAME, METRICS_NAME, CONFIG_NAME))
            self._write_config()
            if self.epoch == 0:
                self.save()        # a good state to fall back to even if epoch 1 diverges
            while self.epoch < last_epoch:
                self._fit_one_epoch()
        return self.history

    def _fit_one_epoch(self):
        start = time.perf_counter()
        train_loss, train_accuracy, test_loss, test_accuracy = self._epoch_with_warnings()
        lr = self.optimizer.param_groups[0]["lr"]
        self.epoch += 1
        row = {"epoch": self.epoch, "train_loss": train_loss, "train_accuracy": train_accuracy,
               "test_loss": test_loss, "test_accuracy": test_accuracy, "lr": lr,
               "seconds": time.perf_counter() - start}
        self.history.append(row)
        try:
            self.save()
        except CheckpointWriteError:
            self.epoch -= 1                   # the epoch is not done until it is saved
            self.history.pop()
            raise
        self._write_metrics()
        self.log(f"epoch {self.epoch:3d}/{self.config.epochs}  "
                 f"train loss {train_loss:.4f} acc {train_accuracy:.4f}  "
                 f"test loss {test_loss:.4f} acc {test_accuracy:.4f}  "
                 f"lr {lr:.4g}  {row['seconds']:.1f}s")
