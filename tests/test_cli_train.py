"""train / evaluate / demo end to end on tiny settings, in-process."""
import argparse
import json

import numpy as np
import pytest

from se_numpy.train.checkpoint import load_checkpoint
from se_numpy.train.cli import add_commands


TINY = ["--data", "synthetic:2", "--train-limit", "64", "--test-limit", "32", "--batch-size", "32",
        "--backend", "numpy", "--quiet"]


def _main(argv):
    """Run the commands on a parser holding only this package's subcommands.

    The project's full parser (se_numpy.cli) also loads every other command
    module; test_registered_in_project_cli checks the wiring into it separately.
    """
    parser = argparse.ArgumentParser(prog="se-numpy")
    add_commands(parser.add_subparsers(dest="command", required=True))
    parsed = parser.parse_args(argv)
    return parsed.func(parsed)


def test_registered_in_project_cli():
    from se_numpy.cli import build_parser
    parsed = build_parser().parse_args(["train", "--epochs", "3", "--quiet"])
    assert parsed.func.__module__ == "se_numpy.train.cli" and parsed.epochs == 3
    assert build_parser().parse_args(["demo", "--fast"]).fast


def test_train_then_evaluate(tmp_path, capsys):
    run = str(tmp_path / "run")
    assert _main(["train", "--model", "tiny_resnet", "--epochs", "1", "--out", run] + TINY) == 0
    out = capsys.readouterr().out
    assert "tiny_resnet on synthetic:2: test accuracy" in out
    _, _, meta = load_checkpoint(f"{run}/checkpoint.npz")
    assert meta["epoch"] == 1 and meta["config"]["train_limit"] == 64
    assert _main(["evaluate", run]) == 0
    evaluated = capsys.readouterr().out
    # the evaluation reproduces the accuracy the trainer logged for the same weights
    logged = json.loads(open(f"{run}/metrics.jsonl").read().splitlines()[-1])["test_accuracy"]
    assert f"test accuracy {logged:.4f} (32 images)" in evaluated


def test_resume_continues_and_refuses_changed_settings(tmp_path, capsys):
    run = str(tmp_path / "run")
    common = ["--model", "se_tiny_resnet", "--reduction", "2", "--out", run] + TINY
    assert _main(["train", "--epochs", "1"] + common) == 0
    # training into an existing run without --resume is refused, not overwritten
    assert _main(["train", "--epochs", "1"] + common) == 2
    assert "--resume" in capsys.readouterr().err
    assert _main(["train", "--resume", "--epochs", "2", "--out", run, "--quiet"]) == 0
    _, _, meta = load_checkpoint(f"{run}/checkpoint.npz")
    assert meta["epoch"] == 2 and len(meta["history"]) == 2
    assert _main(["train", "--resume", "--lr", "0.5", "--out", run, "--quiet"]) == 2
    assert "lr: saved 0.05, given 0.5" in capsys.readouterr().err


def test_train_reports_divergence_with_exit_code(tmp_path, capsys):
    with np.errstate(all="ignore"):
        code = _main(["train", "--model", "tiny_resnet", "--epochs", "1", "--lr", "1e12",
                      "--schedule", "constant", "--out", str(tmp_path / "r")] + TINY)
    assert code == 3
    assert "last good checkpoint (epoch 0)" in capsys.readouterr().err


def test_bad_options_give_clear_errors(tmp_path, capsys):
    assert _main(["train", "--model", "no_such_net", "--out", str(tmp_path / "a")] + TINY) == 2
    assert "unknown model 'no_such_net'" in capsys.readouterr().err
    assert _main(["train", "--data", f"cifar10:{tmp_path}/none", "--out", str(tmp_path / "b"),
                  "--quiet"]) == 2
    assert "CIFAR-10 directory not found" in capsys.readouterr().err
    assert _main(["evaluate", str(tmp_path / "nothing")]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_demo_fast_prints_table_and_writes_figure(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SE_NUMPY_FAST", "1")
    out_dir = tmp_path / "demo"
    assert _main(["demo", "--out", str(out_dir), "--backend", "numpy", "--epochs", "1",
                  "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "tiny_resnet" in text and "se_tiny_resnet" in text and "test accuracy" in text
    with open(out_dir / "learning_curves.png", "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    assert (out_dir / "se" / "checkpoint.npz").exists()
    # the table, as printed, and its numbers beside the figure
    table = (out_dir / "summary.txt").read_text()
    assert table.strip() in text and "kernel compilation" in table
    summary = json.loads((out_dir / "summary.json").read_text())
    for key in ("plain", "se"):
        run = summary[key]
        assert run["test_accuracy"] == run["history"][-1]["test_accuracy"]
        assert run["seconds"] > 0 and run["compile_seconds"] >= 0
        assert f"{run['test_accuracy']:.4f}" in table


def test_demo_trains_both_nets_with_the_same_settings(tmp_path, monkeypatch):
    # The comparison is only fair if the two runs differ in the model (and its SE
    # reduction) alone: record the config each run is given instead of training.
    from se_numpy.train import demo

    seen = []

    class RecordingTrainer:
        def __init__(self, config, run_dir, quiet=False, dataset=None, log=print):
            seen.append((config, dataset))
            from se_numpy import models
            self.model = models.create(config.model, seed=0)

        def fit(self):
            return [{"epoch": 1, "train_loss": 1.0, "test_accuracy": 0.5}]

    monkeypatch.setattr(demo, "Trainer", RecordingTrainer)
    monkeypatch.setattr(demo, "warm_up", lambda trainer: 0.0)
    demo.run_demo(str(tmp_path), fast=True, seed=3, quiet=True, log=lambda message: None)
    (plain, plain_data), (se, se_data) = seen
    assert (plain.model, se.model) == (demo.PLAIN_MODEL, demo.SE_MODEL)
    assert plain.reduction is None and se.reduction == demo.DEMO_REDUCTION
    differing = {key for key, value in plain.to_dict().items()
                 if se.to_dict()[key] != value}
    assert differing == {"model", "reduction"}
    assert plain.lr == demo.DEMO_LEARNING_RATE and plain.seed == 3
    assert plain_data is se_data          # one data set, so the same images and labels
