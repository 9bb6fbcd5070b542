"""Transformer layers over the image regions, with coordinates at every layer."""

import math

import keras
import numpy as np
from keras import ops

from simmim_tf.api_export import simmim_export
from simmim_tf.layers.transformer_block import TransformerBlock

# Frequencies (in half-turns over the image side) of the sine-cosine
# coordinate features. The lowest one has a wavelength of twice the image
# side, so that its dot products fall monotonically with distance across the
# whole image ("closest" and "furthest" are then one attention head each).
COORDINATE_FREQUENCIES = (0.5, 1.0, 2.0, 4.0)


def coordinate_features(rows, cols):
    """Fixed features of each region's centre: (rows * cols, 2 + 4 * frequencies).

    x and y in [-1, 1] (RN's coordinate tags, CoordConv's channels), then
    sin and cos of π·f·x and π·f·y for each f of `COORDINATE_FREQUENCIES`
    (2-D sine-cosine). Row-major, as the region tokens are.
    """
    y = (np.arange(rows) + 0.5) / rows * 2.0 - 1.0
    x = (np.arange(cols) + 0.5) / cols * 2.0 - 1.0
    yy, xx = np.meshgrid(y, x, indexing="ij")
    xx, yy = xx.reshape(-1), yy.reshape(-1)
    features = [xx, yy]
    for f in COORDINATE_FREQUENCIES:
        for v in (xx, yy):
            features += [np.sin(math.pi * f * v), np.cos(math.pi * f * v)]
    return np.stack(features, axis=-1).astype("float32")


@simmim_export
class ImageEncoder(keras.layers.Layer):
    """Self-attention between image regions, so that regions relate to each other.

    `num_layers` pre-norm `TransformerBlock`s over the region tokens. Before
    each block, a learned projection of fixed coordinate features (see
    `coordinate_features`) is added to the tokens, so position is present at
    every depth rather than only at the stem, where it is soon drowned by
    content (the role of RN's coordinate tags and FiLM's coordinate maps).
    (The experiments' `AblationImageEncoder` can leave the coordinates out
    or add a relative position bias; neither was kept.)

    Args:
        num_layers: int. Transformer blocks over the regions; 0 makes the
            layer the identity.
        num_heads: int. Attention heads.
        intermediate_dim: int. MLP hidden size.
        grid_shape: (int, int). Rows and columns of the region grid.
        dropout: float. Dropout rate.

    Call arguments:
        regions: (batch, rows * cols, dim), row-major.

    Returns:
        (batch, rows * cols, dim).

    Example:
    >>> layer = ImageEncoder(num_layers=2, num_heads=2, intermediate_dim=32,
    ...                      grid_shape=(3, 3))
    >>> layer(np.zeros((1, 9, 16))).shape
    (1, 9, 16)
    """

    def __init__(
        self,
        num_layers,
        num_heads,
        intermediate_dim,
        grid_shape,
        dropout=0.0,
        **kwargs,
    ):
        # Configs of earlier versions name the two ablation options; only
        # the values the layer has load.
        for name, value in (("coordinates", True), ("relative_position_bias", False)):
            if kwargs.pop(name, value) != value:
                raise ValueError(
                    f"ImageEncoder({name}={not value}) is an ablation "
                    "(benchmarks.ablation_backbone.AblationImageEncoder)"
                )
        super().__init__(**kwargs)
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.grid_shape = tuple(grid_shape)
        self.dropout = dropout

    def build(self, regions_shape):
        policy = self.dtype_policy
        dim = regions_shape[-1]
        rows, cols = self.grid_shape
        if regions_shape[1] is not None and regions_shape[1] != rows * cols:
            raise ValueError(
                f"ImageEncoder: {regions_shape[1]} regions do not fill the {rows}×{cols} grid_shape"
            )
        self.blocks, self.coordinate_projections = [], []
        for i in range(self.num_layers):
            block = TransformerBlock(
                self.num_heads,
                dim // self.num_heads,
                self.intermediate_dim,
                self.dropout,
                name=f"block_{i}",
                dtype=policy,
            )
            block.build(regions_shape)
            self.blocks.append(block)
            self.coordinate_projections.append(self._coordinate_projection(i, dim))

    def _coordinate_projection(self, i, dim):
        """Block i's projection of the coordinate features (an experiment's
        subclass may have none)."""
        projection = keras.layers.Dense(dim, name=f"coordinates_{i}", dtype=self.dtype_policy)
        projection.build((None, 2 + 4 * len(COORDINATE_FREQUENCIES)))
        return projection

    def call(self, regions, training=None):
        x = regions
        features = ops.convert_to_tensor(
            coordinate_features(*self.grid_shape), dtype=self.compute_dtype
        )  # (regions, features)
        for i, block in enumerate(self.blocks):
            x = self._with_position(i, x, features)
            x = block(x, attention_bias=self._attention_bias(i), training=training)
        return x

    def _with_position(self, i, x, features):
        """Block i's input: the tokens plus its projection of the coordinate
        features, (regions, dim) broadcast over the batch."""
        return x + self.coordinate_projections[i](features)

    def _attention_bias(self, i):
        """Block i's bias on the attention scores: none (an experiment's
        subclass adds one)."""
        return None

    def compute_output_shape(self, regions_shape):
        return regions_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_layers": self.num_layers,
                "num_heads": self.num_heads,
                "intermediate_dim": self.intermediate_dim,
                "grid_shape": list(self.grid_shape),
                "dropout": self.dropout,
            }
        )
        return config
