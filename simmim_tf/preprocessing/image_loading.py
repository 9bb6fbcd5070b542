"""Reading an image file into the uint8 (H, W, 3) array the model takes.

Any PNG or JPEG mode is accepted: palette images, grayscale and 16-bit
grayscale, CMYK, and images with transparency (composited on white by
`image_conversion.to_rgb`, as the model's image converter does).
"""

import os

import numpy as np
from PIL import Image, UnidentifiedImageError

from simmim_tf.errors import SimMIMInputError
from simmim_tf.preprocessing.image_conversion import convert_image

FORMATS = ("PNG", "JPEG")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def image_files(folder):
    """Every PNG or JPEG under `folder` (recursively), sorted; a one-line
    error for a missing folder or one without images."""
    if not os.path.isdir(folder):
        raise SimMIMInputError(f"--images {folder}: not a folder")
    files = sorted(
        os.path.join(root, name)
        for root, _, names in os.walk(folder)
        for name in names
        if name.lower().endswith(IMAGE_SUFFIXES)
    )
    if not files:
        raise SimMIMInputError(f"--images {folder}: no .png, .jpg or .jpeg files in it")
    return files


def load_image(path, image_size=None):
    """Loads a PNG or JPEG as uint8 RGB, resized to `image_size` if given.

    Raises `SimMIMInputError` naming the file for a missing file, a file that
    is not a readable PNG or JPEG, or an image with no pixels.
    """
    problem = image_header_problem(path)
    if problem:
        raise SimMIMInputError(problem)
    try:
        with Image.open(path) as image:
            image.load()  # a truncated file fails here, after a sound header
            pixels = _pixels(image)
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise SimMIMInputError(f"{path}: not a readable PNG or JPEG image ({e})") from None
    if pixels.size == 0:
        raise SimMIMInputError(f"{path}: the image has no pixels ({image.size[0]}x{image.size[1]})")
    return convert_image(pixels, image_size)


def _pixels(image):
    """The decoded image as uint8 (H, W) or (H, W, channels) with 1 to 4 channels."""
    if image.mode in ("L", "LA", "RGB", "RGBA"):
        return np.asarray(image, dtype=np.uint8)
    if image.mode in ("P", "PA") or "transparency" in image.info:
        return np.asarray(image.convert("RGBA"), dtype=np.uint8)
    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        # 16-bit and 32-bit grayscale: keep the top 8 of 16 bits.
        wide = np.asarray(image, dtype=np.float64)
        return np.clip(wide / 257.0, 0, 255).round().astype(np.uint8)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)  # 1-bit, CMYK, YCbCr, ...


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
