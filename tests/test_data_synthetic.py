"""The embedded data set, batching, normalisation and augmentation."""
import numpy as np
import pytest

from se_numpy.data import (BatchLoader, ImageDataset, SyntheticConfig, make_synthetic,
                           random_crop, random_horizontal_flip, to_float)
from se_numpy.data.synthetic import generate_split

SMALL = SyntheticConfig(train_size=300, test_size=100)


def test_synthetic_is_deterministic_and_seed_dependent():
    first, again = make_synthetic(3, SMALL), make_synthetic(3, SMALL)
    other = make_synthetic(4, SMALL)
    np.testing.assert_array_equal(first.train_images, again.train_images)
    np.testing.assert_array_equal(first.test_labels, again.test_labels)
    assert not np.array_equal(first.train_images, other.train_images)
    assert first.train_images.shape == (300, 3, 32, 32) and first.train_images.dtype == np.uint8
    assert first.num_classes == 10 and set(np.unique(first.train_labels)) == set(range(10))


def digest(dataset):
    """SHA-256 of both splits' images and labels, shapes and dtypes included."""
    import hashlib
    h = hashlib.sha256()
    for array in (dataset.train_images, dataset.train_labels, dataset.test_images,
                  dataset.test_labels):
        h.update(str(array.shape).encode())
        h.update(str(array.dtype).encode())
        h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


# Digests of the generator's output as it was when limits made every image and then
# dropped most (make_synthetic(...).subset(...)): the images must never change.
SEED_0_FIRST_500_AND_200 = "6cbea3c399e9afe307345d536f994546b891f925eee22d5f68594d841d062c16"
SEED_7_HALF_DISTRACTORS = SyntheticConfig(train_size=1100, test_size=300,
                                          distractor_probability=0.5)
SEED_7_WHOLE = "b23076b5a86556464ed597923cdbe0c6d398e946b79b1b79b162a3e9b976b0b6"
SEED_7_FIRST_700_AND_3 = "17af89dd77cc1bb080cd09454b35a6bfe80f13e7cea79eb1cbf109dd0f53edbb"


def test_limits_make_only_the_first_images_bit_for_bit():
    # 500 and 700 images span two chunks of generate_split's IMAGES_PER_CHUNK (512)
    assert digest(make_synthetic(0, train_limit=500, test_limit=200)) == SEED_0_FIRST_500_AND_200
    whole = make_synthetic(7, SEED_7_HALF_DISTRACTORS)
    assert digest(whole) == SEED_7_WHOLE
    first = make_synthetic(7, SEED_7_HALF_DISTRACTORS, train_limit=700, test_limit=3)
    assert digest(first) == SEED_7_FIRST_700_AND_3
    assert digest(first) == digest(whole.subset(700, 3))
    assert make_synthetic(7, SEED_7_HALF_DISTRACTORS, train_limit=5000).train_images.shape[0] \
        == 1100                                                 # a limit past the end keeps all


def test_load_dataset_passes_the_limits_to_the_generator():
    from se_numpy.data import load_dataset
    data = load_dataset("synthetic:3", train_limit=6, test_limit=0)
    assert data.train_images.shape == (6, 3, 32, 32) and data.test_images.shape == (0, 3, 32, 32)
    np.testing.assert_array_equal(data.train_images,
                                  make_synthetic(3, train_limit=7).train_images[:6])
    for bad in (-1, 2.5, True, "3"):
        with pytest.raises(ValueError, match="train_limit: expected None or an int >= 0"):
            make_synthetic(0, SMALL, train_limit=bad)


def _signal_channels(seed, count):
    """Replay generate_split's draws to learn the hidden signal channel of each image.

    generate_split draws the labels first, then the signal channel.
    """
    probe = np.random.default_rng(seed)
    probe.integers(0, 10, count)
    return probe.integers(0, 3, count)


def _window_mean(images, size):
    """Mean of each channel over the centred size x size window: (N, 3)."""
    start = (images.shape[-1] - size) // 2
    window = images[:, :, start:start + size, start:start + size]
    return window.astype(np.float64).mean(axis=(2, 3))


def test_signal_channel_is_the_brightest_on_average_but_not_locally():
    count = 400
    images, _ = generate_split(count, np.random.default_rng(11))
    signal_channel = _signal_channels(11, count)
    # the whole-image mean (an SE block's squeeze) names the signal channel every time:
    # the illumination averages to exactly zero over the image, leaving the cue (0.08)
    # against pixel noise averaged over 1024 pixels (std 0.05 / 32)
    whole = _window_mean(images, 32).argmax(axis=1) == signal_channel
    assert np.mean(whole) > 0.97
    # windows up to 24 x 24 do not: chance is 1/3, and the illumination's residual
    # over a partial period (up to about 0.3 x its amplitude 0.2-0.4) rivals the cue.
    # Measured on this sample: 8 x 8 about 0.44, 24 x 24 about 0.79.
    assert np.mean(_window_mean(images, 8).argmax(axis=1) == signal_channel) < 0.6
    assert np.mean(_window_mean(images, 24).argmax(axis=1) == signal_channel) < 0.9


def test_every_channel_carries_a_texture_of_the_same_contrast():
    # Without illumination, cue and noise a channel is background + grating, so its
    # standard deviation is the grating's: contrast / sqrt(2) for whole periods, within a
    # few percent otherwise. Distractors use the signal's contrast, so the three channels
    # of one image agree and no channel stands out by its local energy.
    quiet = SyntheticConfig(illumination=(0.0, 0.0), noise=0.0, cue_offset=0.0)
    images, _ = generate_split(200, np.random.default_rng(3), quiet)
    channel_std = images.astype(np.float64).std(axis=(2, 3)) / 255.0
    low, high = quiet.contrast_range
    assert channel_std.min() > 0.9 * low / np.sqrt(2)
    assert channel_std.max() < 1.1 * high / np.sqrt(2)
    assert np.max(channel_std.max(axis=1) / channel_std.min(axis=1)) < 1.1
    # and with distractors switched off only the signal channel has any texture at all
    alone = SyntheticConfig(illumination=(0.0, 0.0), noise=0.0, cue_offset=0.0,
                            distractor_probability=0.0)
    images, _ = generate_split(200, np.random.default_rng(3), alone)
    channel_std = images.astype(np.float64).std(axis=(2, 3))
    textured = channel_std.argmax(axis=1)
    np.testing.assert_array_equal(textured, _signal_channels(3, 200))
    assert np.all(np.sort(channel_std, axis=1)[:, :2] == 0.0)


def test_channel_mean_std_matches_direct_computation():
    data = make_synthetic(0, SMALL)
    mean, std = data.channel_mean_std()
    pixels = data.train_images.transpose(1, 0, 2, 3).reshape(3, -1) / 255.0
    np.testing.assert_allclose(mean, pixels.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(std, pixels.std(axis=1), rtol=1e-12)


def test_dataset_rejects_bad_arrays():
    images = np.zeros((4, 3, 8, 8), np.uint8)
    with pytest.raises(ValueError, match="4 images but 3 labels"):
        ImageDataset("x", images, np.zeros(3, np.int64), images, np.zeros(4, np.int64), ("a",))
    with pytest.raises(ValueError, match="uint8"):
        ImageDataset("x", images.astype(np.float32), np.zeros(4, np.int64), images,
                     np.zeros(4, np.int64), ("a",))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ImageDataset("x", images, np.array([0, 1, 2, 0]), images, np.zeros(4, np.int64), ("a", "b"))


def test_to_float_normalises_per_channel():
    images = np.array([[[[0, 255]], [[51, 102]]]], dtype=np.uint8)   # (1, 2, 1, 2)
    x = to_float(images, mean=[0.5, 0.2], std=[0.5, 0.1], dtype=np.float64)
    # channel 0: (0 - .5)/.5 = -1, (1 - .5)/.5 = 1;  channel 1: (.2 - .2)/.1 = 0, (.4 - .2)/.1 = 2
    np.testing.assert_allclose(x, [[[[-1.0, 1.0]], [[0.0, 2.0]]]], atol=1e-12)
    assert to_float(images, [0, 0], [1, 1], np.float32).dtype == np.float32
    with pytest.raises(ValueError, match=r"expected shape \(2,\)"):
        to_float(images, [0.5], [0.5])


def test_random_crop_is_a_shift_with_zero_fill():
    x = np.arange(2 * 1 * 6 * 6, dtype=np.float64).reshape(2, 1, 6, 6) + 1.0
    out = random_crop(x, np.random.default_rng(0), padding=2)
    # replay the generator: top and left offsets for the 2 images
    replay = np.random.default_rng(0)
    top, left = replay.integers(0, 5, 2), replay.integers(0, 5, 2)
    for i in range(2):
        padded = np.pad(x[i, 0], 2)
        np.testing.assert_array_equal(out[i, 0], padded[top[i]:top[i] + 6, left[i]:left[i] + 6])
    assert out.shape == x.shape


def test_horizontal_flip_mirrors_the_chosen_images():
    x = np.arange(4 * 1 * 2 * 3, dtype=np.float32).reshape(4, 1, 2, 3)
    out = random_horizontal_flip(x, np.random.default_rng(5))
    flipped = np.random.default_rng(5).random(4) < 0.5
    assert 0 < flipped.sum() < 4, "choose a seed that flips some but not all images"
    for i in range(4):
        np.testing.assert_array_equal(out[i], x[i, :, :, ::-1] if flipped[i] else x[i])


def test_loader_covers_every_image_once_per_epoch_in_a_new_order():
    images = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1)
    labels = np.arange(10)
    loader = BatchLoader(images, labels, 4, mean=[0.0], std=[1 / 255], shuffle=True,
                         rng=np.random.default_rng(0), dtype=np.float64)
    assert len(loader) == 3
    epochs = []
    for _ in range(2):
        batches = list(loader)
        assert [len(y) for _, y in batches] == [4, 4, 2]
        seen = np.concatenate([y for _, y in batches])
        # with std = 1/255 and mean 0 the float image equals the label it was made from
        np.testing.assert_array_equal(np.concatenate([x.ravel() for x, _ in batches]), seen)
        assert sorted(seen) == list(range(10))
        epochs.append(seen)
    assert not np.array_equal(epochs[0], epochs[1])
    dropping = BatchLoader(images, labels, 4, [0.0], [1.0], drop_last=True)
    assert len(dropping) == 2 and np.array_equal(next(iter(dropping))[1], [0, 1, 2, 3])


def test_loader_is_reproduced_from_the_generator_state():
    data = make_synthetic(0, SMALL)
    mean, std = data.channel_mean_std()
    rng = np.random.default_rng(7)
    loader = BatchLoader(data.train_images, data.train_labels, 64, mean, std, shuffle=True,
                         augment=True, rng=rng)
    list(loader)                                         # one epoch moves the generator
    saved = rng.bit_generator.state
    second = [x for x, _ in loader]
    restored = np.random.default_rng()
    restored.bit_generator.state = saved
    replay = BatchLoader(data.train_images, data.train_labels, 64, mean, std, shuffle=True,
                         augment=True, rng=restored)
    for a, b in zip(second, replay):
        np.testing.assert_array_equal(a, b[0])


def test_loader_rejects_bad_arguments():
    images, labels = np.zeros((4, 1, 2, 2), np.uint8), np.zeros(4, np.int64)
    with pytest.raises(TypeError, match="Generator"):
        BatchLoader(images, labels, 2, [0.0], [1.0], shuffle=True)
    with pytest.raises(ValueError, match="batch_size"):
        BatchLoader(images, labels, 0, [0.0], [1.0])
    with pytest.raises(ValueError, match="must agree"):
        BatchLoader(images, labels[:3], 2, [0.0], [1.0])


def test_plot_samples_writes_a_png(tmp_path):
    from se_numpy.data import plot_samples
    path = plot_samples(str(tmp_path / "samples.png"), make_synthetic(0, SMALL), per_class=1)
    with open(path, "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
