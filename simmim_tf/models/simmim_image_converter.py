"""SimMIMImageConverter: images as people have them → the backbone's uint8 RGB."""

import keras_hub
import tensorflow as tf
from keras_hub.src.utils.tensor_utils import preprocessing_function

from simmim_tf.api_export import simmim_export
from simmim_tf.models.simmim_backbone import SimMIMBackbone


@simmim_export
class SimMIMImageConverter(keras_hub.layers.ImageConverter):
    """Grayscale or alpha to RGB, then resize: the one image path of the model.

    1, 2 (gray + alpha), 3 or 4 (RGBA) channels, uint8 or float pixels in
    0..255, a batch (batch, H, W, C) or one image (H, W, C). Alpha is
    composited on white (the generators' background), then keras-hub's
    resizing (centre crop to the aspect ratio, bilinear) to `image_size`,
    rounded to uint8. `simmim_tf.preprocessing.image_conversion` is the same
    computation in NumPy for the edge runtime (tested to agree).

    Args:
        image_size: int or (int, int). Output side(s) in pixels.

    Example:
    >>> converter = SimMIMImageConverter(image_size=75)
    >>> converter(np.zeros((2, 300, 200, 4), "uint8")).shape
    TensorShape([2, 75, 75, 3])
    """

    backbone_cls = SimMIMBackbone

    def __init__(self, image_size=None, **kwargs):
        if isinstance(image_size, int):
            image_size = (image_size, image_size)
        kwargs.update(crop_to_aspect_ratio=True, interpolation="bilinear", antialias=False)
        kwargs.update(scale=None, offset=None, pad_to_aspect_ratio=False)
        super().__init__(image_size=image_size, **kwargs)

    @preprocessing_function
    def call(self, inputs):
        x = tf.cast(inputs, tf.float32)
        if x.shape.rank == 2:  # one grayscale image without a channel axis
            x = x[..., None]
        channels = x.shape[-1]
        if channels not in (1, 2, 3, 4):
            raise ValueError(f"images have 1 to 4 channels; received shape {inputs.shape}")
        if channels in (2, 4):  # composite the alpha channel on white
            alpha = x[..., -1:] / 255.0
            x = tf.round(x[..., :-1] * alpha + 255.0 * (1.0 - alpha))
        if x.shape[-1] == 1:
            x = tf.repeat(x, 3, axis=-1)
        if self.image_size is not None and tuple(x.shape[-3:-1]) != tuple(self.image_size):
            x = self.resizing(x)
        return tf.cast(tf.round(tf.clip_by_value(x, 0.0, 255.0)), tf.uint8)

    def get_config(self):
        config = super().get_config()
        for fixed in (
            "crop_to_aspect_ratio",
            "interpolation",
            "antialias",
            "scale",
            "offset",
            "pad_to_aspect_ratio",
        ):
            config.pop(fixed, None)
        return config
