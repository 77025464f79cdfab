"""Trainer: the loss goes down, checkpoints round-trip, resume is exact, NaN stops cleanly."""
import json
import os

import numpy as np
import pytest

from se_numpy.data import SyntheticConfig, make_synthetic
from se_numpy.train import Trainer, TrainConfig, TrainingDiverged
from se_numpy.train.checkpoint import (generator_from_json, generator_state_to_json,
                                       load_checkpoint, save_checkpoint)


@pytest.fixture(scope="module")
def tiny_data():
    return make_synthetic(5, SyntheticConfig(train_size=96, test_size=32))


def _config(**changes):
    settings = dict(model="se_tiny_resnet", data="synthetic:5", epochs=2, batch_size=32, lr=0.05,
                    reduction=2, backend="numpy", seed=3)
    settings.update(changes)
    return TrainConfig(**settings)


def test_a_few_steps_reduce_the_loss_on_one_batch(tiny_data, tmp_path):
    # repeated steps on one fixed batch must fit it: the loss falls well below its start
    trainer = Trainer(_config(lr=0.2, weight_decay=0.0), str(tmp_path), quiet=True,
                      dataset=tiny_data)
    x, y = next(iter(trainer.train_loader))
    losses = []
    for _ in range(10):
        logits = trainer.model(x)
        losses.append(float(trainer.loss_fn(logits, y)))
        trainer.model.zero_grad()
        trainer.model.backward(trainer.loss_fn.backward())
        trainer.optimizer.step()
    # start ≈ ln 10 = 2.30 (random init); 10 momentum steps on 32 images fit them
    assert losses[0] > 1.8 and losses[-1] < 0.6 * losses[0], losses


def test_fit_writes_metrics_config_and_checkpoint(tiny_data, tmp_path):
    history = Trainer(_config(), str(tmp_path), quiet=True, dataset=tiny_data).fit()
    assert [row["epoch"] for row in history] == [1, 2]
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
    for row in history:
        assert 0.0 <= row["test_accuracy"] <= 1.0 and np.isfinite(row["train_loss"])
    assert json.loads((tmp_path / "config.json").read_text())["model"] == "se_tiny_resnet"
    _, _, meta = load_checkpoint(str(tmp_path / "checkpoint.npz"))
    assert meta["epoch"] == 2 and meta["config"]["reduction"] == 2


HISTORY_ROW = {"epoch": 1, "train_loss": 1.0, "train_accuracy": 0.5, "test_loss": 1.0,
               "test_accuracy": 0.5, "lr": 0.1, "seconds": 1.0}


def test_checkpoint_round_trip_without_pickle(tmp_path):
    rng = np.random.default_rng(123)
    rng.random(5)
    model_state = {"conv.weight": np.arange(6, dtype=np.float32).reshape(2, 3),
                   "bn.num_batches_tracked": np.array(7, dtype=np.int64)}
    optimizer_state = {"momentum_buffer.0": np.ones(3), "group.0.nesterov": np.array(False)}
    path = str(tmp_path / "ck.npz")
    save_checkpoint(path, model_state, optimizer_state,
                    {"epoch": 4, "rng_state": generator_state_to_json(rng),
                     "config": {"epochs": 5}, "history": [HISTORY_ROW] * 4,
                     "normalization": {"mean": [0.5], "std": [0.25]}, "dataset": {}})
    loaded_model, loaded_optimizer, meta = load_checkpoint(path)
    for saved, loaded in ((model_state, loaded_model), (optimizer_state, loaded_optimizer)):
        assert saved.keys() == loaded.keys()
        for key in saved:
            np.testing.assert_array_equal(saved[key], loaded[key])
            assert saved[key].dtype == loaded[key].dtype
    assert meta["epoch"] == 4
    # the restored generator continues exactly where the saved one was
    np.testing.assert_array_equal(generator_from_json(meta["rng_state"]).random(4), rng.random(4))
    # nothing but .npz and no leftover temporary files
    assert os.listdir(tmp_path) == ["ck.npz"]
    with np.load(path, allow_pickle=False) as archive:
        assert all(archive[key].dtype != object for key in archive.files)


def test_load_checkpoint_rejects_other_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_checkpoint(str(tmp_path / "missing.npz"))
    not_a_checkpoint = tmp_path / "other.npz"
    np.savez(not_a_checkpoint, x=np.zeros(2))
    with pytest.raises(ValueError, match="no 'meta'"):
        load_checkpoint(str(not_a_checkpoint))
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError, match="garbage.npz"):
        load_checkpoint(str(garbage))


def test_resume_is_bit_identical_to_an_uninterrupted_run(tiny_data, tmp_path):
    straight = Trainer(_config(epochs=2), str(tmp_path / "straight"), quiet=True, dataset=tiny_data)
    straight.fit()

    # the same 2-epoch run, interrupted after epoch 1 (the lr schedule spans 2 epochs in both)
    first = Trainer(_config(epochs=2), str(tmp_path / "split"), quiet=True, dataset=tiny_data)
    first.fit(stop_after=1)
    # a fresh process would rebuild everything from the config, then load the checkpoint
    resumed = Trainer(_config(epochs=2), str(tmp_path / "split"), quiet=True, dataset=tiny_data)
    resumed.restore()
    assert resumed.epoch == 1
    resumed.fit()

    straight_state, resumed_state = straight.model.state_dict(), resumed.model.state_dict()
    assert straight_state.keys() == resumed_state.keys()
    for key in straight_state:
        np.testing.assert_array_equal(straight_state[key], resumed_state[key], err_msg=key)
    for a, b in zip(straight.optimizer.momentum_buffers, resumed.optimizer.momentum_buffers):
        np.testing.assert_array_equal(a, b)
    assert [r["train_loss"] for r in straight.history] == [r["train_loss"] for r in resumed.history]
    # and the run genuinely moved: parameters differ from the initial ones
    initial = Trainer(_config(), str(tmp_path / "init"), quiet=True, dataset=tiny_data)
    assert not np.array_equal(initial.model.state_dict()["fc.weight"], straight_state["fc.weight"])


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tiny_data, tmp_path):
    trainer = Trainer(_config(epochs=2), str(tmp_path), quiet=True, dataset=tiny_data)
    trainer.fit()
    good_state = trainer.model.state_dict()
    before = (tmp_path / "checkpoint.npz").read_bytes()
    # plant a NaN in the classifier: the next forward pass yields NaN logits
    trainer.config.epochs = 3
    trainer.model.fc.weight.data[0, 0] = np.nan
    with pytest.raises(TrainingDiverged,
                       match=r"nan.* at epoch 3, batch 1 .*checkpoint \(epoch 2\)"):
        trainer.fit()
    assert (tmp_path / "checkpoint.npz").read_bytes() == before
    model_state, _, meta = load_checkpoint(str(tmp_path / "checkpoint.npz"))
    assert meta["epoch"] == 2
    np.testing.assert_array_equal(model_state["fc.weight"], good_state["fc.weight"])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")     # overflow on the way to inf is the point
def test_huge_learning_rate_diverges_cleanly_in_the_first_epoch(tiny_data, tmp_path):
    trainer = Trainer(_config(lr=1e12, epochs=1, schedule="constant"), str(tmp_path), quiet=True,
                      dataset=tiny_data)
    with pytest.raises(TrainingDiverged, match="epoch 0"):
        trainer.fit()
    # the epoch-0 checkpoint (the initial weights) is there to fall back to
    _, _, meta = load_checkpoint(str(tmp_path / "checkpoint.npz"))
    assert meta["epoch"] == 0


def test_float64_run_keeps_float64(tiny_data, tmp_path):
    trainer = Trainer(_config(dtype="float64", epochs=1), str(tmp_path), quiet=True,
                      dataset=tiny_data.subset(32, 16))
    trainer.fit()
    assert all(p.data.dtype == np.float64 for p in trainer.model.parameters())


def test_demo_warm_up_leaves_the_run_bit_identical(tiny_data, tmp_path):
    from se_numpy.train.demo import warm_up
    warmed = Trainer(_config(epochs=1), str(tmp_path / "warmed"), quiet=True, dataset=tiny_data)
    before = warmed.model.state_dict()
    rng_state = warmed.rng.bit_generator.state
    assert warm_up(warmed) > 0
    after = warmed.model.state_dict()
    assert all(np.array_equal(before[key], after[key]) for key in before)
    assert warmed.rng.bit_generator.state == rng_state
    assert all(not np.any(p.grad) for p in warmed.model.parameters())
    plain = Trainer(_config(epochs=1), str(tmp_path / "plain"), quiet=True, dataset=tiny_data)
    assert warmed.fit()[0]["train_loss"] == plain.fit()[0]["train_loss"]


def test_non_finite_batchnorm_statistics_stop_the_run(tiny_data, tmp_path):
    # inputs of about 1e20 (a std of 1e-20 in the normalisation): their squares overflow
    # float32, so BatchNorm's running variance becomes inf while its output, divided by
    # that inf, stays finite and the weights may stay finite too
    trainer = Trainer(_config(epochs=1), str(tmp_path), quiet=True, dataset=tiny_data)
    trainer.train_loader.std = np.full_like(trainer.std, 1e-20)
    with pytest.raises(TrainingDiverged, match=r"^BatchNorm's running statistics became "
                                               r"non-finite after the last step \(.*running_var"
                                               r".*Preceded by RuntimeWarning: overflow"):
        trainer.fit()
    _, _, meta = load_checkpoint(str(tmp_path / "checkpoint.npz"))
    assert meta["epoch"] == 0


@pytest.mark.parametrize("settings, match", [
    (dict(train_limit=0), r"train_limit: expected an integer >= 1"),
    (dict(test_limit=-5), r"test_limit: expected an integer >= 1"),
    (dict(warmup=-3), r"warmup: expected an integer >= 0"),
    (dict(epochs=1.5), r"epochs: expected an integer >= 0"),
    (dict(lr=float("nan")), r"lr: expected a finite non-negative number"),
])
def test_train_config_refuses_out_of_range_settings(settings, match):
    with pytest.raises(ValueError, match=match):
        _config(**settings)
