"""Reading an image file into the uint8 (H, W, 3) array the model takes."""

import os

import numpy as np
from PIL import Image, UnidentifiedImageError

from simmim_tf.errors import SimMIMInputError

FORMATS = ("PNG", "JPEG")


def load_image(path, image_size=None):
    """Loads a PNG or JPEG as uint8 RGB, resized to `image_size` if given.

    Raises `SimMIMInputError` naming the file for a missing file, a file that
    is not a readable PNG or JPEG, or an image without 3 channels (RGB).
    """
    problem = image_header_problem(path)
    if problem:
        raise SimMIMInputError(problem)
    try:
        with Image.open(path) as image:
            image.load()  # a truncated file fails here, after a sound header
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise SimMIMInputError(f"{path}: not a readable PNG or JPEG image ({e})") from None
    bands = image.getbands()
    if bands != ("R", "G", "B"):
        raise SimMIMInputError(
            f"{path}: has {len(bands)} channel(s) ({image.mode}); SimMIM expects 3 (RGB)"
        )
    if image_size is not None and image.size != (image_size, image_size):
        image = image.resize((image_size, image_size), Image.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def image_header_problem(path):
    """Why `path` is not a usable image, judged from its header only; None if it looks fine.

    For streaming pipelines, which decode later in the graph: a quick check
    up front so that a missing or mislabelled file is named before training.
    """
    if not os.path.isfile(path):
        return f"image not found: {path}"
    try:
        with Image.open(path) as image:
            if image.format not in FORMATS:
                return f"{path}: not a PNG or JPEG image (format {image.format})"
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        return f"{path}: not a readable PNG or JPEG image ({e})"
    return None
