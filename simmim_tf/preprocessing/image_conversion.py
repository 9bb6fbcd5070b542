"""Images as people have them → the RGB pixels the model takes, in NumPy.

The same two steps as `SimMIMImageConverter` (the Keras layer inside the
model's preprocessor), written without TensorFlow for the edge runtime and
for loading image folders into memory:

1. `to_rgb`: grayscale is repeated over three channels; an alpha channel
   (RGBA, gray + alpha) is composited on white, the background the
   generators draw.
2. `resize`: a centre crop to the target's aspect ratio, then bilinear
   resampling with half-pixel centres and no antialiasing, rounded to uint8:
   what `keras.layers.Resizing(crop_to_aspect_ratio=True)` computes.
   tests/test_image_conversion.py checks both implementations agree.
"""

import numpy as np

WHITE = 255.0


def to_rgb(image):
    """uint8 (H, W), (H, W, 1), (H, W, 2), (H, W, 3) or (H, W, 4) → uint8 (H, W, 3)."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    channels = image.shape[-1]
    if channels not in (1, 2, 3, 4):
        raise ValueError(f"an image has 1 to 4 channels; received shape {image.shape}")
    if channels in (2, 4):
        colour = image[..., :-1].astype(np.float32)
        alpha = image[..., -1:].astype(np.float32) / 255.0
        image = np.rint(colour * alpha + WHITE * (1.0 - alpha)).astype(np.uint8)
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    return image


def _crop_to_aspect_ratio(image, height, width):
    """The centre crop keras' `Resizing(crop_to_aspect_ratio=True)` takes."""
    h, w = image.shape[:2]
    crop_h = max(min(h, int(np.float32(w * height) / np.float32(width))), 1)
    crop_w = max(min(w, int(np.float32(h * width) / np.float32(height))), 1)
    top = int(np.float32(h - crop_h) / 2)
    left = int(np.float32(w - crop_w) / 2)
    return image[top : top + crop_h, left : left + crop_w]


def _bilinear_indices(in_size, out_size):
    """Source rows (or columns) and weights for half-pixel-centre bilinear sampling."""
    scale = in_size / out_size
    centres = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * np.float32(
        scale
    ) - np.float32(0.5)
    low = np.floor(centres)
    weight = (centres - low).astype(np.float32)
    lower = np.clip(low, 0, in_size - 1).astype(np.int64)
    upper = np.clip(np.ceil(centres), 0, in_size - 1).astype(np.int64)
    return lower, upper, weight


def resize(image, image_size):
    """uint8 (H, W, 3) → uint8 (image_size, image_size, 3); unchanged if already that size."""
    image = np.asarray(image)
    if image.shape[:2] == (image_size, image_size):
        return image
    image = _crop_to_aspect_ratio(image, image_size, image_size).astype(np.float32)
    top, bottom, dy = _bilinear_indices(image.shape[0], image_size)
    left, right, dx = _bilinear_indices(image.shape[1], image_size)
    # Along x, then along y: TensorFlow's order, so that rounding agrees.
    cols = image[:, left] + (image[:, right] - image[:, left]) * dx[None, :, None]
    out = cols[top] + (cols[bottom] - cols[top]) * dy[:, None, None]
    return np.rint(np.clip(out, 0, 255)).astype(np.uint8)


def convert_image(image, image_size=None):
    """`to_rgb`, then `resize` when `image_size` is given."""
    image = to_rgb(image)
    return image if image_size is None else resize(image, image_size)
