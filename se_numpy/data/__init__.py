"""Data sets and mini-batches.

    data = sn.data.load_dataset("synthetic")          # or "cifar10:/path/to/cifar-10-batches-py"
    mean, std = data.channel_mean_std()
    loader = sn.data.BatchLoader(data.train_images, data.train_labels, 128, mean, std,
                                 shuffle=True, augment=True, rng=np.random.default_rng(0))

See docs/data.md for how the embedded synthetic data set is built.
"""
from .cifar import load_cifar10, load_cifar100, read_cifar_batch
from .dataset import ImageDataset
from .idx import load_fashion_mnist, load_mnist, read_idx
from .loader import BatchLoader
from .pickle_reader import PickleRefused, read_restricted_pickle
from .plot import plot_samples
from .registry import DATASET_NAMES, load_dataset
from .synthetic import CLASS_NAMES as SYNTHETIC_CLASS_NAMES
from .synthetic import SyntheticConfig, make_synthetic
from .transforms import random_crop, random_horizontal_flip, to_float

__all__ = ["ImageDataset", "BatchLoader", "load_dataset", "DATASET_NAMES", "make_synthetic",
           "SyntheticConfig", "SYNTHETIC_CLASS_NAMES", "load_cifar10", "load_cifar100",
           "load_mnist", "load_fashion_mnist", "read_cifar_batch", "read_idx",
           "read_restricted_pickle", "PickleRefused",
           "plot_samples", "to_float", "random_crop", "random_horizontal_flip"]
