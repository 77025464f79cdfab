"""The embedded data set, "which channel speaks?": textures whose meaning depends on channel context.

Built procedurally from a seed in about a second, nothing downloaded. It is
designed so that the thing an SE block computes (paper Sec. 3: squeeze each
channel to its global mean, then re-weight the channels with a gate that depends
on *all* the means) is exactly what solves the task.

How one 3 x 32 x 32 image of class k is made
--------------------------------------------
1. Pick the *signal channel* a ∈ {R, G, B} at random. It carries the class
   texture: a sinusoidal grating whose orientation and frequency are fixed by
   the class (5 orientations x 2 frequencies = 10 classes), with a random phase
   and contrast.
2. Each of the two other channels carries a *distractor*: the texture of
   another, random class at the same contrast (``distractor_probability`` = 1
   by default, so every image shows three textures of equal local energy and
   the textures alone leave about a one-in-three guess).
3. The signal channel is brighter on average by ``cue_offset``. This global
   mean is the only thing that tells the signal channel from a distractor.
4. Every channel gets an "illumination" field: a low-frequency sinusoid whose
   amplitude (``illumination``) is several times ``cue_offset``, with a whole
   number of periods across the image so that it averages to exactly zero
   over the full image. Locally it swamps the cue (even a 24 x 24 window
   names the signal channel only about 80 % of the time); the global mean
   (the squeeze z_c = 1/(HW) Σ_ij u_c(i,j)) cancels it.
5. Gaussian pixel noise, clipping to [0, 1], rounding to uint8.

Why channel attention helps: a plain CNN ends in global average pooling and a
linear layer, so it can detect *which textures are present* but cannot
multiply "texture t is in channel c" by "channel c is the bright one" after
the pooling; before it, its filters see windows in which the bright channel
is hidden by the illumination. An SE block squeezes each channel to its mean
and gates the channels by it, i.e. it can turn the distractor channels'
features down inside the network, at every block.
"""
from dataclasses import dataclass

import numpy as np

from .dataset import ImageDataset

IMAGE_SIZE = 32
CHANNELS = 3
ORIENTATIONS_DEGREES = (0.0, 36.0, 72.0, 108.0, 144.0)
PERIODS_PIXELS = (8.0, 4.0)          # low and high spatial frequency, in pixels per cycle
CLASS_NAMES = tuple(f"{int(angle)}deg/{'low' if period == 8.0 else 'high'}"
                    for period in PERIODS_PIXELS for angle in ORIENTATIONS_DEGREES)


@dataclass(frozen=True)
class SyntheticConfig:
    """Knobs of the generator (defaults are the ones documented in docs/data.md)."""

    train_size: int = 8000
    test_size: int = 2000
    distractor_probability: float = 1.0    # chance that a non-signal channel shows a distractor
    contrast_range: tuple = (0.1, 0.15)    # grating amplitude (pixel values in [0, 1])
    cue_offset: float = 0.08               # signal channel's extra mean brightness
    illumination: tuple = (0.2, 0.4)       # amplitude range of the zero-mean illumination
    noise: float = 0.05                    # std of the Gaussian pixel noise
    background: float = 0.5                # mean pixel value of a non-signal channel


def _grating(class_index, phase, contrast):
    """Sinusoidal gratings, one per image: (N,) class, phase, contrast -> (N, 32, 32).

    g(i, j) = contrast · sin(2π (j cos θ + i sin θ) / period + phase),
    with θ and period fixed by the class.
    """
    angles = np.deg2rad(np.array(ORIENTATIONS_DEGREES))[class_index % len(ORIENTATIONS_DEGREES)]
    periods = np.array(PERIODS_PIXELS)[class_index // len(ORIENTATIONS_DEGREES)]
    rows, columns = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float64)
    projection = (columns[None] * np.cos(angles)[:, None, None]
                  + rows[None] * np.sin(angles)[:, None, None])
    waves = np.sin(2 * np.pi * projection / periods[:, None, None] + phase[:, None, None])
    return contrast[:, None, None] * waves


def _illumination(rng, count, amplitude_range):
    """Zero-mean low-frequency light fields: the draws for ``count`` images and a maker.

    cos(2π (u j + v i) / 32 + φ) with integer (u, v) ≠ (0, 0) has a whole number
    of periods across the image, so its mean over all 32 x 32 pixels is exactly 0:
    only a *global* average removes it. Returns ``fields(rows)``, which makes the
    (len(rows), 32, 32) fields of the images ``rows`` (a slice).
    """
    directions = np.array([(1, 0), (0, 1), (1, 1), (1, -1)])
    u, v = directions[rng.integers(0, len(directions), count)].T
    phase = rng.uniform(0, 2 * np.pi, count)
    amplitude = rng.uniform(*amplitude_range, count)
    rows, columns = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float64)

    def fields(images):
        angle = (2 * np.pi * (u[images, None, None] * columns + v[images, None, None] * rows)
                 / IMAGE_SIZE)
        return amplitude[images, None, None] * np.cos(angle + phase[images, None, None])
    return fields


IMAGES_PER_CHUNK = 512      # pixels are made in float64 this many images at a time (6 MB)


def generate_split(count, rng, config=SyntheticConfig(), keep=None):
    """``count`` images and labels: uint8 (count, 3, 32, 32), int64 (count,).

    ``keep``: make only the first ``keep`` images (and labels). Every random
    number of every image is still drawn, in the same order, so those images
    are bit for bit the first ``keep`` of the whole split; only their pixels are
    computed. The pixel noise is the last draw and image i's noise is the i-th
    block of it, so it is drawn chunk by chunk for the kept images only.
    """
    num_classes = len(CLASS_NAMES)
    keep = count if keep is None else min(int(keep), count)
    labels = rng.integers(0, num_classes, count)
    signal_channel = rng.integers(0, CHANNELS, count)
    contrast = rng.uniform(*config.contrast_range, count)
    channels = []            # per channel: (is_signal, texture_class, texture_on, phase, light)
    for channel in range(CHANNELS):
        is_signal = signal_channel == channel
        # a distractor is another class's texture: add 1..9 to the label modulo 10
        distractor_class = (labels + rng.integers(1, num_classes, count)) % num_classes
        has_distractor = rng.random(count) < config.distractor_probability
        texture_class = np.where(is_signal, labels, distractor_class)
        texture_on = is_signal | has_distractor
        phase = rng.uniform(0, 2 * np.pi, count)
        light = _illumination(rng, count, config.illumination)
        channels.append((is_signal, texture_class, texture_on, phase, light))
    images = np.empty((keep, CHANNELS, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    for start in range(0, keep, IMAGES_PER_CHUNK):
        rows = slice(start, min(start + IMAGES_PER_CHUNK, keep))
        pixels = np.full((rows.stop - start, CHANNELS, IMAGE_SIZE, IMAGE_SIZE), config.background)
        for channel, (is_signal, texture_class, texture_on, phase, light) in enumerate(channels):
            pixels[:, channel] += texture_on[rows, None, None] * _grating(
                texture_class[rows], phase[rows], contrast[rows])
            pixels[:, channel] += is_signal[rows, None, None] * config.cue_offset
            pixels[:, channel] += light(rows)
        pixels += rng.normal(0.0, config.noise, pixels.shape)
        images[rows] = np.clip(np.rint(pixels * 255.0), 0, 255).astype(np.uint8)
    return images, labels[:keep].astype(np.int64)


def make_synthetic(seed=0, config=SyntheticConfig(), train_limit=None, test_limit=None):
    """The embedded data set, generated deterministically from ``seed``.

    The train and test splits come from independent child generators of one
    ``np.random.SeedSequence(seed)``, so the test set does not change when
    ``train_size`` does. ``train_limit`` / ``test_limit`` make only the first
    images of a split, the same ones as ``make_synthetic(seed).subset(...)``
    at a fraction of the time and memory.
    """
    for name, limit in (("train_limit", train_limit), ("test_limit", test_limit)):
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, np.integer))
                                  or limit < 0):
            raise ValueError(f"{name}: expected None or an int >= 0, got {limit!r}")
    train_sequence, test_sequence = np.random.SeedSequence(seed).spawn(2)
    train_images, train_labels = generate_split(config.train_size,
                                                np.random.default_rng(train_sequence), config,
                                                keep=train_limit)
    test_images, test_labels = generate_split(config.test_size,
                                              np.random.default_rng(test_sequence), config,
                                              keep=test_limit)
    return ImageDataset("synthetic", train_images, train_labels, test_images, test_labels,
                        CLASS_NAMES)
