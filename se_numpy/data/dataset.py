"""``ImageDataset``: the two splits of an image classification data set, in one object.

Every loader (synthetic, CIFAR, MNIST) returns this, so the trainer never
needs to know where the images came from. Images are stored as ``uint8``
NCHW arrays, exactly as the files hold them (CIFAR-10's 50 000 training images
are 150 MB as uint8, 600 MB as float32); ``data/loader.py`` turns one batch at
a time into normalised floats.
"""
from dataclasses import dataclass

import numpy as np


@dataclass
class ImageDataset:
    """Train and test images with their integer labels.

    Attributes
    ----------
    name : str
        e.g. ``"synthetic"``, ``"cifar10"``.
    train_images, test_images : uint8 ndarray, shape (N, C, H, W)
    train_labels, test_labels : int64 ndarray, shape (N,), values in [0, num_classes)
    class_names : tuple of str, one per class
    """

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    class_names: tuple

    def __post_init__(self):
        for split in ("train", "test"):
            images = getattr(self, f"{split}_images")
            labels = getattr(self, f"{split}_labels")
            if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4:
                raise ValueError(f"{self.name}: {split}_images must be a uint8 array of shape "
                                 f"(N, C, H, W), got {getattr(images, 'dtype', type(images))} "
                                 f"with shape {getattr(images, 'shape', None)}")
            if not isinstance(labels, np.ndarray) or labels.ndim != 1 \
                    or labels.dtype.kind not in "iu":
                raise ValueError(f"{self.name}: {split}_labels must be a 1-d integer array, "
                                 f"got {getattr(labels, 'dtype', type(labels))} "
                                 f"with shape {getattr(labels, 'shape', None)}")
            if labels.shape[0] != images.shape[0]:
                raise ValueError(f"{self.name}: {split} has {images.shape[0]} images but "
                                 f"{labels.shape[0]} labels")
            check_label_range(labels, len(self.class_names), f"{self.name} {split} labels")
        if self.train_images.shape[1:] != self.test_images.shape[1:]:
            raise ValueError(f"{self.name}: train images have shape {self.train_images.shape[1:]} "
                             f"but test images {self.test_images.shape[1:]}")
        self.train_labels = self.train_labels.astype(np.int64, copy=False)
        self.test_labels = self.test_labels.astype(np.int64, copy=False)

    @property
    def num_classes(self):
        return len(self.class_names)

    @property
    def image_shape(self):
        """(C, H, W) of one image."""
        return tuple(self.train_images.shape[1:])

    def channel_mean_std(self):
        """Per-channel mean and standard deviation of the training images, in [0, 1] units.

        Used to normalise every split with the *training* statistics (the test
        set must not leak into preprocessing). Accumulated in float64 per channel.
        """
        channels = self.train_images.shape[1]
        mean = np.empty(channels)
        std = np.empty(channels)
        for c in range(channels):
            values = self.train_images[:, c].astype(np.float64) / 255.0
            mean[c] = values.mean()
            std[c] = values.std()
        # a constant channel would divide by zero; leave it unscaled instead
        std[std < 1e-8] = 1.0
        return mean, std

    def subset(self, train_count=None, test_count=None):
        """The first ``train_count`` / ``test_count`` images of each split (for quick runs)."""
        train_end = self.train_images.shape[0] if train_count is None else int(train_count)
        test_end = self.test_images.shape[0] if test_count is None else int(test_count)
        return ImageDataset(self.name, self.train_images[:train_end], self.train_labels[:train_end],
                            self.test_images[:test_end], self.test_labels[:test_end],
                            self.class_names)

    def __repr__(self):
        return (f"ImageDataset({self.name!r}, train={self.train_images.shape}, "
                f"test={self.test_images.shape}, classes={self.num_classes})")


def check_label_range(labels, num_classes, what):
    """Raise ``ValueError`` naming ``what`` if any label is outside [0, num_classes)."""
    if labels.size == 0:
        return
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= num_classes:
        raise ValueError(f"{what}: labels must lie in [0, {num_classes - 1}], "
                         f"found values from {low} to {high}")
