"""Bad options and bad data on the command line: one line with the usual prefix, exit code 2."""
import argparse
import os
import subprocess
import sys

import numpy as np
import pytest

from hostile import archives as A
from hostile import pickles as P
from se_numpy.cli import build_parser, main
from se_numpy.data import load_dataset
from se_numpy.train.cli import add_commands
from se_numpy.train.checkpoint import read_meta


def _main(argv):
    parser = argparse.ArgumentParser(prog="se-numpy")
    add_commands(parser.add_subparsers(dest="command", required=True))
    parsed = parser.parse_args(argv)
    return parsed.func(parsed)


@pytest.fixture
def mnist_dir(tmp_path):
    directory = tmp_path / "mnist"
    directory.mkdir()
    return A.write_tiny_mnist(directory)


def _one_error_line(capsys, prefix):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) >= 1 and err[-1].startswith(prefix), err
    return err[-1]


@pytest.mark.parametrize("argv, message", [
    (["train", "--train-limit", "0"], "argument --train-limit: expected an integer >= 1, got 0"),
    (["train", "--train-limit", "-5"], "argument --train-limit: expected an integer >= 1, got -5"),
    (["train", "--test-limit", "0"], "argument --test-limit: expected an integer >= 1, got 0"),
    (["train", "--warmup", "-3"], "argument --warmup: expected an integer >= 0, got -3"),
    (["train", "--batch-size", "0"], "argument --batch-size: expected an integer >= 1, got 0"),
    (["train", "--epochs", "two"], "argument --epochs: expected an integer, got 'two'"),
    (["demo", "--epochs", "0"], "argument --epochs: expected an integer >= 1, got 0"),
    (["evaluate", "run", "--batch-size", "0"],
     "argument --batch-size: expected an integer >= 1, got 0"),
])
def test_out_of_range_options_are_refused_by_the_parser(capsys, argv, message):
    with pytest.raises(SystemExit) as caught:
        _main(argv)
    assert caught.value.code == 2
    assert _one_error_line(capsys, f"se-numpy {argv[0]}: error: ") == \
        f"se-numpy {argv[0]}: error: {message}"


def test_an_empty_cifar_data_set_is_refused_naming_the_file(tmp_path, capsys):
    empty = P.cifar_batch_py2(np.zeros((0, 3072), np.uint8), [])
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (tmp_path / name).write_bytes(empty)
    assert _main(["train", "--data", f"cifar10:{tmp_path}", "--out", str(tmp_path / "run"),
                  "--backend", "numpy", "--quiet"]) == 2
    assert _one_error_line(capsys, "se-numpy train: error: ") == \
        f"se-numpy train: error: {tmp_path}/data_batch_1: holds no images"


def test_an_empty_mnist_file_is_refused_naming_it(mnist_dir, tmp_path, capsys):
    (mnist_dir / "t10k-images-idx3-ubyte").write_bytes(A.idx_header(2051, (0, 28, 28)))
    assert _main(["train", "--data", f"mnist:{mnist_dir}", "--out", str(tmp_path / "run"),
                  "--backend", "numpy", "--quiet"]) == 2
    line = _one_error_line(capsys, "se-numpy train: error: ")
    assert line.startswith(f"se-numpy train: error: {mnist_dir}/t10k-images-idx3-ubyte: ")
    assert line.endswith("no images")


def test_home_and_environment_variables_are_expanded_in_data_paths(mnist_dir, monkeypatch):
    monkeypatch.setenv("HOME", str(mnist_dir.parent))
    monkeypatch.setenv("SE_NUMPY_TEST_DATA", str(mnist_dir.parent))
    for spec in ("mnist:~/mnist", "mnist:$SE_NUMPY_TEST_DATA/mnist",
                 "mnist:${SE_NUMPY_TEST_DATA}/mnist"):
        assert load_dataset(spec).train_images.shape == (16, 1, 28, 28)


def test_train_prints_one_starting_line_and_picks_numba(mnist_dir, tmp_path, capsys):
    run = tmp_path / "run"
    assert _main(["train", "--data", f"mnist:{mnist_dir}", "--epochs", "0",
                  "--out", str(run)]) == 0
    lines = capsys.readouterr().out.splitlines()
    from se_numpy.train.commands import fastest_cpu_backend
    backend = fastest_cpu_backend()
    assert lines[0] == (f"training se_tiny_resnet on mnist:{mnist_dir}, backend {backend}, "
                        f"0 epochs, run directory {run}")
    assert read_meta(str(run / "checkpoint.npz"))["config"]["backend"] == backend
    assert lines[-1].startswith("se_tiny_resnet on mnist:") and "no epochs run" in lines[-1]


def test_the_fastest_cpu_backend_is_numba_where_numba_runs():
    from se_numpy.kernels.backend import use_backend
    from se_numpy.train.commands import fastest_cpu_backend
    try:
        with use_backend("numba"):
            pass
        expected = "numba"
    except RuntimeError:
        expected = "numpy"
    assert fastest_cpu_backend() == expected


@pytest.mark.parametrize("content, message", [
    (b"accuracy 0.93\n", "not a se_numpy checkpoint (not a readable .npz archive: BadZipFile: "
                         "File is not a zip file)"),
    (None, "not a se_numpy checkpoint (no 'meta' entry)"),
])
def test_evaluate_on_a_file_that_is_not_a_checkpoint(tmp_path, capsys, content, message):
    path = tmp_path / "checkpoint.npz"
    if content is None:
        np.savez(path, weights=np.zeros(3))
    else:
        path.write_bytes(content)
    assert _main(["evaluate", str(path)]) == 2
    line = _one_error_line(capsys, "se-numpy evaluate: error: ")
    assert line == f"se-numpy evaluate: error: {path}: {message}"
    assert "allow_pickle" not in line


@pytest.mark.parametrize("argv, prefix, valid", [
    (["gradcheck", "--only", "no_such_operation"], "se-numpy gradcheck: error: ",
     "valid names: "),
    (["models", "--only", "AlexNet"], "se-numpy models: error: ", "valid rows: ResNet-50"),
])
def test_unknown_only_names_list_the_valid_ones(capsys, argv, prefix, valid):
    assert main(argv) == 2
    line = _one_error_line(capsys, prefix)
    assert valid in line and argv[-1] in line


def test_bench_cuda_without_a_gpu_is_one_line():
    env = {key: value for key, value in os.environ.items() if key != "NUMBA_ENABLE_CUDASIM"}
    probe = subprocess.run([sys.executable, "-c", "from numba import cuda; "
                            "print(cuda.is_available())"], env=env, capture_output=True,
                           text=True)
    if probe.stdout.strip() == "True":
        pytest.skip("a GPU is present: the refusal cannot happen here")
    result = subprocess.run([sys.executable, "-m", "se_numpy", "bench", "--backend", "cuda",
                             "--quick", "--no-torch"], env=env, capture_output=True, text=True)
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("se-numpy bench: error: the 'cuda' backend "
                                                   "needs an NVIDIA GPU"), result.stderr


def test_every_option_has_help_with_its_default():
    parser = build_parser()
    subparsers = next(action for action in parser._actions
                      if isinstance(action, argparse._SubParsersAction))
    for name in ("train", "evaluate", "demo"):
        for action in subparsers.choices[name]._actions:
            if not action.option_strings or action.dest == "help":
                continue
            assert action.help, (name, action.option_strings)
            if action.nargs != 0:         # options taking a value say their default
                assert "default" in action.help, (name, action.option_strings, action.help)
