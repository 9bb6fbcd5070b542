"""Image to region tokens with a 2-D position embedding."""

import math

import keras
from keras import ops

from simmim_tf.api_export import simmim_export

STEMS = ("patchify", "conv")
# Position embeddings start at the scale of the batch-normed stem features
# (ViT's 0.02 left "is it on the left?" at chance on Sort-of-CLEVR: the
# position was drowned by the content).
POSITION_STDDEV = 0.5


class GridTokens:
    """What every stem shares: a grid of `patch_size`-pixel regions, and the
    learned row and column embeddings added to its features. A stem sets
    `hidden_dim` and `patch_size`, builds its layers and calls
    `_build_position`, and defines `stem_features` (images → (batch, rows,
    cols, hidden_dim)), where masked-image pretraining swaps in its mask
    token."""

    def grid_shape(self, image_height, image_width):
        """The (rows, columns) of the region grid for an image size."""
        return (
            math.ceil(image_height / self.patch_size),
            math.ceil(image_width / self.patch_size),
        )

    def call(self, images, training=None):
        return self.add_position(self.stem_features(images, training=training))

    def _build_position(self, rows, cols):
        self.row_embedding = self.add_weight(
            shape=(rows, 1, self.hidden_dim),
            initializer=keras.initializers.RandomNormal(stddev=POSITION_STDDEV),
            name="row_embedding",
        )
        self.column_embedding = self.add_weight(
            shape=(1, cols, self.hidden_dim),
            initializer=keras.initializers.RandomNormal(stddev=POSITION_STDDEV),
            name="column_embedding",
        )

    def add_position(self, features):
        """(batch, rows, cols, hidden_dim) stem features → (batch, regions, hidden_dim) tokens."""
        position = ops.cast(self.row_embedding + self.column_embedding, self.compute_dtype)
        x = features + position  # (rows, cols, hidden) broadcast over the batch
        batch, rows, cols = ops.shape(x)[0], ops.shape(x)[1], ops.shape(x)[2]
        return ops.reshape(x, (batch, rows * cols, self.hidden_dim))

    def compute_output_shape(self, images_shape):
        rows, cols = self.grid_shape(images_shape[1], images_shape[2])
        return (images_shape[0], rows * cols, self.hidden_dim)


@simmim_export
class PatchEmbedding(GridTokens, keras.layers.Layer):
    """Turns uint8 images into a sequence of region tokens.

    Two stems:
    - `"patchify"`: a `patch_size`×`patch_size` convolution with the same
      stride, as in ViT (one token per non-overlapping patch);
    - `"conv"`: a small convolutional stem, `log2(patch_size)` 3×3
      convolutions of stride 2 with batch norm and ReLU, then a 1×1
      projection; its tokens see a little
      context around their patch, which helps on small images.

    Both give a grid of ceil(H / patch_size) × ceil(W / patch_size) regions
    ("same" padding), to which a learned row embedding and a learned column
    embedding are added.

    Args:
        hidden_dim: int. Size of each region token.
        patch_size: int. Side of the patch in pixels; a power of two for the
            `"conv"` stem.
        stem: str. `"patchify"` or `"conv"`.

    Call arguments:
        images: (batch, height, width, 3), uint8 or float in [0, 255].

    Returns:
        (batch, regions, hidden_dim), regions in row-major grid order.

    Example:
    >>> layer = PatchEmbedding(hidden_dim=32, patch_size=8, stem="conv")
    >>> layer(np.zeros((2, 64, 64, 3), "uint8")).shape
    (2, 64, 32)
    """

    def __init__(self, hidden_dim, patch_size=8, stem="conv", **kwargs):
        super().__init__(**kwargs)
        if stem not in STEMS:
            raise ValueError(f"`stem` must be one of {STEMS}; received stem={stem!r}")
        if stem == "conv" and (patch_size < 2 or patch_size & (patch_size - 1)):
            raise ValueError(
                f"The 'conv' stem halves the image log2(patch_size) times, so "
                f"`patch_size` must be a power of two >= 2; received {patch_size}"
            )
        self.hidden_dim = hidden_dim
        self.patch_size = patch_size
        self.stem = stem

    def build(self, images_shape):
        policy = self.dtype_policy
        rows, cols = self.grid_shape(images_shape[1], images_shape[2])
        self.stem_layers = []
        if self.stem == "patchify":
            self.stem_layers.append(
                keras.layers.Conv2D(
                    self.hidden_dim,
                    self.patch_size,
                    strides=self.patch_size,
                    padding="same",
                    name="patchify",
                    dtype=policy,
                )
            )
        else:
            self.stem_layers = self._conv_stem(policy)
        shape = tuple(images_shape)
        for layer in self.stem_layers:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self._build_position(rows, cols)

    def _conv_stem(self, policy):
        """log2(patch_size) stride-2 3×3 convolutions with batch norm and
        ReLU, then a 1×1 projection to hidden_dim."""
        layers = []
        num_convs = int(math.log2(self.patch_size))
        for i in range(num_convs):
            # Widths grow towards hidden_dim: hidden/2^(n-1-i), at least 16.
            width = max(16, self.hidden_dim // 2 ** (num_convs - 1 - i))
            # Batch norm, as in the Sort-of-CLEVR CNN of Santoro et al.:
            # on mostly-blank images it makes the few object responses
            # stand out from the start (it folds into the convolution
            # in TFLite). Synchronized across tf.distribute replicas, so
            # that training on N devices normalises over the global batch
            # as one device does (the option exists on TensorFlow only).
            layers += [
                # No bias: the batch norm after it would cancel it, and
                # Adam would move it by noise.
                keras.layers.Conv2D(
                    width,
                    3,
                    strides=2,
                    padding="same",
                    use_bias=False,
                    name=f"stem_conv_{i}",
                    dtype=policy,
                ),
                keras.layers.BatchNormalization(
                    synchronized=keras.backend.backend() == "tensorflow",
                    name=f"stem_norm_{i}",
                    dtype=policy,
                ),
                keras.layers.ReLU(name=f"stem_relu_{i}", dtype=policy),
            ]
        layers.append(keras.layers.Conv2D(self.hidden_dim, 1, name="stem_projection", dtype=policy))
        return layers

    def stem_features(self, images, training=None):
        """The stem's output before the position embedding: (batch, rows, cols,
        hidden_dim). Masked-image pretraining swaps masked patches for its
        mask token here, before `add_position`, as SimMIM does."""
        # Pixels to [-1, 1]: centred inputs train faster than [0, 1].
        x = ops.cast(images, self.compute_dtype) * ops.cast(2.0 / 255.0, self.compute_dtype) - 1.0
        for layer in self.stem_layers:
            x = layer(x, training=training)
        return x

    def get_config(self):
        config = super().get_config()
        config.update(
            {"hidden_dim": self.hidden_dim, "patch_size": self.patch_size, "stem": self.stem}
        )
        return config
