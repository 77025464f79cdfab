"""``load_dataset("cifar10:/path")``: one string names a data set, as on the command line.

    synthetic              the embedded data set (seed 0)
    synthetic:SEED         the embedded data set from another seed
    cifar10:DIR            CIFAR-10 python batches in DIR
    cifar100:DIR           CIFAR-100 python files in DIR
    mnist:DIR              MNIST IDX files in DIR
    fashion-mnist:DIR      Fashion-MNIST IDX files in DIR

``~`` and environment variables (``$HOME``, ``${DATA}``) in DIR are expanded.
"""
import os

from .cifar import load_cifar10, load_cifar100
from .idx import load_fashion_mnist, load_mnist
from .synthetic import make_synthetic

_LOADERS = {"cifar10": load_cifar10, "cifar100": load_cifar100,
            "mnist": load_mnist, "fashion-mnist": load_fashion_mnist}

DATASET_NAMES = ("synthetic",) + tuple(_LOADERS)


def load_dataset(spec, train_limit=None, test_limit=None):
    """Parse ``spec`` (``NAME`` or ``NAME:ARGUMENT``) and return an ``ImageDataset``.

    ``train_limit`` / ``test_limit`` keep the first images of each split, as
    ``ImageDataset.subset`` does; the synthetic set then makes only those.
    """
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"data: expected a string like 'synthetic' or 'cifar10:DIR', got {spec!r}")
    name, _, argument = spec.partition(":")
    name = name.strip().lower()
    if name == "synthetic":
        try:
            seed = int(argument) if argument else 0
        except ValueError:
            raise ValueError(f"data {spec!r}: 'synthetic:SEED' needs an integer seed") from None
        return make_synthetic(seed, train_limit=train_limit, test_limit=test_limit)
    if name not in _LOADERS:
        raise ValueError(f"data {spec!r}: unknown data set {name!r}, expected one of "
                         f"{', '.join(DATASET_NAMES)}")
    if not argument:
        raise ValueError(f"data {spec!r}: {name} needs a directory, e.g. '{name}:/data/{name}'")
    # the shell expands ~ only at the start of a word, never after "cifar10:"
    dataset = _LOADERS[name](os.path.expanduser(os.path.expandvars(argument)))
    if train_limit is not None or test_limit is not None:
        dataset = dataset.subset(train_limit, test_limit)
    return dataset
