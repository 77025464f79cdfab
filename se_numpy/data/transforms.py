"""Per-batch preprocessing: scale to floats, normalise per channel, CIFAR augmentation.

All randomness comes from a ``np.random.Generator`` passed in by the caller,
so a run is reproduced exactly by reproducing the generator's state (which is
what the checkpoints store).
"""
import numpy as np


def to_float(images, mean, std, dtype=np.float32):
    """uint8 (N,C,H,W) -> normalised floats: x = (images/255 − mean_c) / std_c.

    ``mean`` and ``std`` have shape (C,) and are in [0, 1] units (see
    ``ImageDataset.channel_mean_std``). The arithmetic runs in ``dtype``.
    """
    mean = np.asarray(mean, dtype=dtype)
    std = np.asarray(std, dtype=dtype)
    channels = images.shape[1]
    if mean.shape != (channels,) or std.shape != (channels,):
        raise ValueError(f"mean and std: expected shape ({channels},) for {channels}-channel "
                         f"images, got {mean.shape} and {std.shape}")
    x = images.astype(dtype) / dtype(255)
    x -= mean[None, :, None, None]
    x /= std[None, :, None, None]
    return x


def random_crop(x, rng, padding=4):
    """Pad each image by ``padding`` zeros on every side and cut a random H x W window from it.

    The standard CIFAR augmentation (He et al. 2016, Sec. 4.2, used by the SE paper's
    CIFAR experiments): each image is shifted by up to ``padding`` pixels in
    each direction, with zeros (the normalised mean) filling the gap.
    """
    n, _, height, width = x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    top = rng.integers(0, 2 * padding + 1, n)
    left = rng.integers(0, 2 * padding + 1, n)
    out = np.empty_like(x)
    for i in range(n):
        out[i] = padded[i, :, top[i]:top[i] + height, left[i]:left[i] + width]
    return out


def random_horizontal_flip(x, rng, probability=0.5):
    """Mirror each image left-right with the given probability (a new array)."""
    flip = rng.random(x.shape[0]) < probability
    out = x.copy()
    out[flip] = out[flip, :, :, ::-1]
    return out
