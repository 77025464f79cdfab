"""``BatchLoader``: shuffled, normalised, optionally augmented mini-batches.

    loader = BatchLoader(images, labels, batch_size=128, mean=mean, std=std,
                         shuffle=True, augment=True, rng=np.random.default_rng(0))
    for x, y in loader:          # x float (B, C, H, W), y int64 (B,)
        ...

One pass over the loader is one epoch. The order and the augmentation draw
from ``rng``; iterating twice continues the same generator, so epoch 2 gets a
new order, and restoring the generator's state restores the exact sequence.
"""
import numpy as np

from .transforms import random_crop, random_horizontal_flip, to_float


class BatchLoader:
    """Iterate over (images, labels) in mini-batches.

    Parameters
    ----------
    images : uint8 ndarray (N, C, H, W)
    labels : int ndarray (N,)
    batch_size : int
    mean, std : per-channel normalisation, shape (C,), in [0, 1] units
    shuffle : draw a new random order every epoch (training) or keep file order (evaluation)
    augment : random crop with 4-pixel padding and horizontal flip (CIFAR-style)
    rng : np.random.Generator, required when shuffle or augment is on
    drop_last : skip a final incomplete batch (keeps BatchNorm statistics from tiny batches)
    dtype : float32 or float64
    """

    def __init__(self, images, labels, batch_size, mean, std, shuffle=False, augment=False,
                 rng=None, drop_last=False, dtype=np.float32):
        if images.ndim != 4 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
            raise ValueError(f"images (N,C,H,W) and labels (N,) must agree, got shapes "
                             f"{images.shape} and {labels.shape}")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size: expected a positive integer, got {batch_size}")
        if (shuffle or augment) and not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng: shuffling or augmenting needs a np.random.Generator, "
                            f"got {type(rng).__name__}")
        self.images, self.labels = images, labels
        self.batch_size = int(batch_size)
        self.mean, self.std = mean, std
        self.shuffle, self.augment, self.drop_last = shuffle, augment, drop_last
        self.rng = rng
        self.dtype = np.dtype(dtype).type

    def __len__(self):
        """Number of batches per epoch."""
        count = self.images.shape[0]
        if self.drop_last:
            return count // self.batch_size
        return -(-count // self.batch_size)

    def __iter__(self):
        count = self.images.shape[0]
        order = self.rng.permutation(count) if self.shuffle else np.arange(count)
        for batch_index in range(len(self)):
            chosen = order[batch_index * self.batch_size:(batch_index + 1) * self.batch_size]
            x = to_float(self.images[chosen], self.mean, self.std, self.dtype)
            if self.augment:
                x = random_horizontal_flip(random_crop(x, self.rng), self.rng)
            yield x, self.labels[chosen]
