"""An image file to the network's input, as timm's evaluation transform does it.

For a model whose weights expect a size x size crop (``models.zoo.preprocessing``):

    1. resize so that the shorter side is floor(size / crop_pct) pixels, the longer
       side int(shorter_new · long / short), with the model's interpolation
       (bilinear or bicubic; Pillow filters with antialiasing when it shrinks)
    2. cut the centre size x size (top = round((h − size) / 2), likewise left)
    3. x = (pixel / 255 − mean) / std per channel, laid out (3, size, size)

This is torchvision's ``Resize(int)`` -> ``CenterCrop`` -> ``ToTensor`` -> ``Normalize``
on a Pillow image, the order timm's ``transforms_imagenet_eval`` builds.
"""
import math

import numpy as np

INTERPOLATIONS = ("bilinear", "bicubic")


def _pillow():
    try:
        from PIL import Image
    except ImportError:                   # Pillow comes with matplotlib, a dependency
        raise ImportError("se-numpy predict needs Pillow: pip install pillow") from None
    return Image


def read_image(path):
    """The image at ``path`` as an RGB Pillow image; ValueError if it cannot be read."""
    Image = _pillow()
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except FileNotFoundError:
        raise ValueError(f"{path}: no such image file") from None
    except (OSError, SyntaxError, ValueError) as error:     # Pillow's "cannot identify" etc.
        raise ValueError(f"{path}: not a readable image ({error})") from None


def resize_shorter_side(image, shorter, interpolation):
    """Scale so the shorter side is ``shorter`` pixels, keeping the aspect ratio."""
    Image = _pillow()
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation: expected one of {INTERPOLATIONS}, got {interpolation!r}")
    width, height = image.size
    if width <= height:
        size = (shorter, int(shorter * height / width))
    else:
        size = (int(shorter * width / height), shorter)
    resample = Image.BICUBIC if interpolation == "bicubic" else Image.BILINEAR
    return image.resize(size, resample)


def center_crop(image, size):
    width, height = image.size
    if width < size or height < size:
        raise ValueError(f"center_crop: the image is {width}x{height}, smaller than {size}")
    top = int(round((height - size) / 2.0))
    left = int(round((width - size) / 2.0))
    return image.crop((left, top, left + size, top + size))


def to_input(image, config, dtype=np.float32):
    """A Pillow image -> (3, size, size) array under ``config`` (a ``Preprocessing``)."""
    shorter = math.floor(config.input_size / config.crop_pct)
    image = center_crop(resize_shorter_side(image, shorter, config.interpolation),
                        config.input_size)
    pixels = np.asarray(image, dtype=np.float64) / 255.0           # (size, size, 3)
    mean, std = np.asarray(config.mean), np.asarray(config.std)
    return ((pixels - mean) / std).transpose(2, 0, 1).astype(dtype)
