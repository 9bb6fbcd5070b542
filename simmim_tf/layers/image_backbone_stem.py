"""A keras-hub image backbone as the stem: images to region tokens."""

import math

import keras
from keras import ops

from simmim_tf.api_export import simmim_export
from simmim_tf.layers.patch_embedding import GridTokens


def _grid(backbone, image_size):
    """(rows, cols, class_tokens) of `backbone`'s output on a square image."""
    shape = backbone.compute_output_spec(keras.KerasTensor((1, image_size, image_size, 3))).shape
    if len(shape) == 4:  # a feature map (1, rows, cols, channels)
        return shape[1], shape[2], 0
    if len(shape) == 3:  # tokens (1, [class token +] rows * cols, dim), a square grid
        for class_tokens in (0, 1):
            side = math.isqrt(shape[1] - class_tokens)
            if side * side == shape[1] - class_tokens:
                return side, side, class_tokens
    raise ValueError(
        f"{type(backbone).__name__} gives {tuple(shape)} on a {image_size}×{image_size} image: "
        "the stem needs a feature map (batch, rows, cols, channels) or the tokens of a "
        "square grid (batch, [class token +] rows * cols, dim)"
    )


@simmim_export
class ImageBackboneStem(GridTokens, keras.layers.Layer):
    """Any keras-hub image backbone as the stem of `SimMIMBackbone`.

    A convolutional backbone's last feature map (MobileNet, EfficientNet,
    ResNet, CSPNet: (batch, rows, cols, channels)) or a ViT's patch tokens
    (its class token left out) are projected to `hidden_dim` and get the
    same learned row and column embeddings as `PatchEmbedding`'s regions
    (`GridTokens`); the region side in pixels (`patch_size`) is the
    backbone's total stride. The rest of SimMIM (attention, memory, relational anchors,
    masked-image pretraining, export) works on these regions unchanged.

    Pixels (0..255) reach the backbone as `pixels * scale + offset`: give
    the keras-hub preset's `ImageConverter` values when starting from its
    weights (e.g. `scale=1 / 255` for MobileNetV3, `scale=1 / 127.5,
    offset=-1` for ViT); the default maps them to [-1, 1] as the package's
    own stems do.

    Args:
        backbone: keras_hub.models.Backbone (or its serialized config). An
            image backbone whose input is (batch, height, width, 3).
        hidden_dim: int. Size of each region token.
        image_size: int. Side of the square input images; must be a whole
            number of the backbone's strides.
        scale: float or 3 floats. Pixel scale.
        offset: float or 3 floats. Added after scaling.

    Call arguments:
        images: (batch, image_size, image_size, 3), uint8 or float in [0, 255].

    Returns:
        (batch, rows * cols, hidden_dim), regions in row-major grid order.

    Example:
    >>> vit = keras_hub.models.ViTBackbone(image_shape=(32, 32, 3),
    ...     patch_size=8, num_layers=1, num_heads=2, hidden_dim=16, mlp_dim=32)
    >>> ImageBackboneStem(vit, hidden_dim=32, image_size=32)(
    ...     np.zeros((2, 32, 32, 3), "uint8")).shape
    (2, 16, 32)
    """

    def __init__(self, backbone, hidden_dim, image_size, scale=2.0 / 255.0, offset=-1.0, **kwargs):
        if isinstance(backbone, dict):
            backbone = keras.saving.deserialize_keras_object(backbone)
        rows, cols, class_tokens = _grid(backbone, image_size)
        if rows != cols or rows * (image_size // rows) != image_size:
            raise ValueError(
                f"{type(backbone).__name__} makes a {rows}×{cols} grid of a {image_size}-pixel "
                "image: image_size must be a whole number of the backbone's strides"
            )
        super().__init__(**kwargs)
        self.class_tokens = class_tokens
        self.patch_size = image_size // rows
        self.backbone = backbone
        self.hidden_dim = hidden_dim
        self.image_size = image_size
        self.scale = scale
        self.offset = offset

    def build(self, images_shape):
        rows, cols = self.grid_shape(images_shape[1], images_shape[2])
        self.projection = keras.layers.Dense(
            self.hidden_dim, name="projection", dtype=self.dtype_policy
        )
        channels = self.backbone.compute_output_spec(
            keras.KerasTensor((1, self.image_size, self.image_size, 3))
        ).shape[-1]
        self.projection.build((None, rows, cols, channels))
        self._build_position(rows, cols)

    def stem_features(self, images, training=None):
        scale = ops.convert_to_tensor(self.scale, self.compute_dtype)
        offset = ops.convert_to_tensor(self.offset, self.compute_dtype)
        x = ops.cast(images, self.compute_dtype) * scale + offset
        x = self.backbone(x, training=training)
        rows, cols = self.grid_shape(self.image_size, self.image_size)
        if len(x.shape) == 3:  # ViT tokens → (batch, rows, cols, dim)
            x = ops.reshape(x[:, self.class_tokens :], (-1, rows, cols, x.shape[-1]))
        return self.projection(ops.cast(x, self.compute_dtype))  # (batch, rows, cols, hidden)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "backbone": keras.saving.serialize_keras_object(self.backbone),
                "hidden_dim": self.hidden_dim,
                "image_size": self.image_size,
                "scale": self.scale,
                "offset": self.offset,
            }
        )
        return config
