"""The ``train``, ``evaluate`` and ``demo`` subcommands of ``se-numpy``.

``add_commands(subparsers)`` registers them on the main parser (se_numpy/cli.py);
each handler returns the process exit code.
"""
import argparse
import os
import sys

from ..kernels.backend import available_backends
from .config import TrainConfig

DEFAULTS = TrainConfig()
# exceptions that end a command with one line "se-numpy COMMAND: error: ..." and exit code 2
# (OSError: an unreadable data file, a full disk, a run directory that cannot be made)
USER_ERRORS = (ValueError, TypeError, OSError, RuntimeError)


def _integer_at_least(minimum):
    """An argparse type: an int >= minimum, else argparse's own one-line error."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value
    parse.__name__ = f"integer >= {minimum}"
    return parse


positive_int = _integer_at_least(1)
non_negative_int = _integer_at_least(0)


def _plural(count, word):
    return f"{count} {word}" + ("" if count == 1 else "s")


def add_commands(subparsers):
    _add_train(subparsers)
    _add_evaluate(subparsers)
    _add_demo(subparsers)


# ---------------------------------------------------------------------------- train
def _add_train(subparsers):
    parser = subparsers.add_parser(
        "train", help="train a model on the embedded data or CIFAR/MNIST",
        # the full synopsis is 10 lines: above a one-line error it would bury it
        usage="%(prog)s [options]   (--help lists every option with its default)",
        description="Train a model from the registry. Every option has a default: "
                    "`se-numpy train` trains a small SE-ResNet on the embedded data set.")
    add = parser.add_argument
    # option defaults are None so that --resume can tell "given" from "not given";
    # the real defaults live in TrainConfig and are shown in the help
    add("--model", help=f"model name, see `se-numpy models` (default {DEFAULTS.model})")
    add("--data", help="synthetic[:SEED] | cifar10:DIR | cifar100:DIR | mnist:DIR | "
                       f"fashion-mnist:DIR (default {DEFAULTS.data})")
    add("--epochs", type=non_negative_int, help=f"passes over the training set "
                                               f"(default {DEFAULTS.epochs})")
    add("--batch-size", type=positive_int, help=f"images per SGD step (default "
                                                f"{DEFAULTS.batch_size})")
    add("--lr", type=float, help=f"peak learning rate (default {DEFAULTS.lr})")
    add("--momentum", type=float, help=f"SGD momentum (default {DEFAULTS.momentum})")
    add("--nesterov", action="store_true", default=None, help="Nesterov momentum (default off)")
    add("--weight-decay", type=float, help=f"L2 penalty, not on BatchNorm or biases "
                                           f"(default {DEFAULTS.weight_decay})")
    add("--schedule", choices=("cosine", "step", "constant"),
        help=f"learning-rate schedule (default {DEFAULTS.schedule})")
    add("--schedule-unit", choices=("iteration", "epoch"),
        help=f"step the schedule every batch or every epoch (default {DEFAULTS.schedule_unit})")
    add("--warmup", type=non_negative_int,
        help="linear warm-up length in schedule units (default 0)")
    add("--reduction", type=positive_int,
        help="SE reduction ratio r (SE models only; default: the model's)")
    add("--augment", action="store_true", default=None,
        help="random crop + flip (default: on for CIFAR only)")
    add("--no-augment", dest="augment", action="store_false", help="no augmentation")
    add("--backend", choices=available_backends(),
        help="kernel backend (default: numba if it runs here, else numpy)")
    add("--seed", type=non_negative_int, help=f"initialisation and data order "
                                              f"(default {DEFAULTS.seed})")
    add("--dtype", choices=("float32", "float64"), help=f"default {DEFAULTS.dtype}")
    add("--train-limit", type=positive_int, metavar="N",
        help="use only the first N training images (default: all)")
    add("--test-limit", type=positive_int, metavar="N",
        help="use only the first N test images (default: all)")
    add("--out", default=None, help="run directory (default runs/MODEL)")
    add("--resume", action="store_true",
        help="continue the run in --out from its checkpoint (default off)")
    add("--quiet", action="store_true", help="no progress bar, no per-epoch lines (default off)")
    parser.set_defaults(func=_train)


_CONFIG_OPTIONS = ("model", "data", "epochs", "batch_size", "lr", "momentum", "nesterov",
                   "weight_decay", "schedule", "schedule_unit", "warmup", "reduction", "augment",
                   "backend", "seed", "dtype", "train_limit", "test_limit")


def _train(args):
    from .commands import fastest_cpu_backend, run_training
    from .trainer import TrainingDiverged

    options = {key: getattr(args, key) for key in _CONFIG_OPTIONS}
    run_dir = args.out or os.path.join("runs", options["model"] or DEFAULTS.model)
    try:
        if options["backend"] is None and not args.resume:
            options["backend"] = fastest_cpu_backend()
        if not args.quiet and not args.resume:
            epochs = DEFAULTS.epochs if options["epochs"] is None else options["epochs"]
            print(f"training {options['model'] or DEFAULTS.model} on "
                  f"{options['data'] or DEFAULTS.data}, backend {options['backend']}, "
                  f"{_plural(epochs, 'epoch')}, run directory {run_dir}")
        trainer = run_training(options, run_dir, resume=args.resume, quiet=args.quiet)
    except TrainingDiverged as error:
        print(f"se-numpy train: {error}", file=sys.stderr)
        return 3
    except USER_ERRORS as error:
        print(f"se-numpy train: error: {_one_line(error)}", file=sys.stderr)
        return 2
    last = trainer.history[-1] if trainer.history else None
    summary = (f"test accuracy {last['test_accuracy']:.4f} after "
               f"{_plural(last['epoch'], 'epoch')}" if last else "no epochs run")
    print(f"{trainer.config.model} on {trainer.config.data}: {summary}; "
          f"checkpoint {trainer.checkpoint_path}")
    return 0


def _one_line(error):
    """An exception as one line; an OSError names its file."""
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        return f"{error.filename}: {error.strerror}"
    return " ".join(str(error).split())


# ---------------------------------------------------------------------------- evaluate
def _add_evaluate(subparsers):
    parser = subparsers.add_parser(
        "evaluate", help="test accuracy of a trained run",
        description="Evaluate a run directory (or its checkpoint.npz) on the test split.")
    parser.add_argument("path", help="run directory or checkpoint file")
    parser.add_argument("--data", help="data to evaluate on (default: what the run trained on)")
    parser.add_argument("--backend", choices=available_backends(),
                        help="kernel backend (default: the run's)")
    parser.add_argument("--batch-size", type=positive_int, default=256,
                        help="images per forward pass (default 256)")
    parser.set_defaults(func=_evaluate)


def _evaluate(args):
    from .commands import run_evaluation
    try:
        result = run_evaluation(args.path, data=args.data, backend=args.backend,
                                batch_size=args.batch_size)
    except USER_ERRORS as error:
        print(f"se-numpy evaluate: error: {_one_line(error)}", file=sys.stderr)
        return 2
    print(f"{result['model']} (epoch {result['epoch']}) on {result['data']}: "
          f"test loss {result['test_loss']:.4f}, test accuracy {result['test_accuracy']:.4f} "
          f"({result['test_images']} images)")
    return 0


# ---------------------------------------------------------------------------- demo
def _add_demo(subparsers):
    parser = subparsers.add_parser(
        "demo", help="plain vs SE ResNet on the embedded data: table and learning curves",
        description="Train a small plain ResNet and the same net with SE blocks on the embedded "
                    "data set; print parameters, time and test accuracy side by side and "
                    "write a figure of both learning curves.")
    parser.add_argument("--out", default="runs/demo", help="output directory (default runs/demo)")
    parser.add_argument("--fast", action="store_true",
                        help="a much shorter run (also: environment SE_NUMPY_FAST=1)")
    parser.add_argument("--backend", choices=available_backends(), default=None,
                        help="kernel backend (default: the demo's fastest CPU backend)")
    parser.add_argument("--seed", type=non_negative_int, default=0,
                        help="data, initialisation and order of both nets (default 0)")
    parser.add_argument("--epochs", type=positive_int, default=None,
                        help="epochs of each net (default 8, with --fast 2)")
    parser.add_argument("--quiet", action="store_true",
                        help="no per-epoch lines (default off)")
    parser.set_defaults(func=_demo)


def _demo(args):
    from .demo import (DEFAULT_BACKEND, fast_requested, format_table, plot_learning_curves,
                       run_demo, write_summary)
    fast = fast_requested(args.fast)
    try:
        results = run_demo(args.out, fast=fast, backend=args.backend or DEFAULT_BACKEND,
                           seed=args.seed, epochs=args.epochs, quiet=args.quiet)
        figure = plot_learning_curves(results, os.path.join(args.out, "learning_curves.png"))
        summary_paths = write_summary(results, args.out)
    except USER_ERRORS as error:
        print(f"se-numpy demo: error: {_one_line(error)}", file=sys.stderr)
        return 2
    print()
    print(format_table(results))
    difference = results["se"]["test_accuracy"] - results["plain"]["test_accuracy"]
    print(f"\nSE minus plain test accuracy: {difference:+.4f}"
          + ("   (--fast: too short to compare)" if fast else ""))
    print(f"learning curves: {figure}")
    print(f"summary: {', '.join(summary_paths)}")
    return 0
