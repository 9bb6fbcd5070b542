"""Anchored relational attention: find the object the question names, then
read the regions by their offset from it."""

import keras
import numpy as np
from keras import ops

from simmim_tf.api_export import simmim_export
from simmim_tf.layers.layer_norm import LayerNorm

# Hidden size of the MLP from an offset to per-head score biases.
OFFSET_HIDDEN = 32


def region_centres(rows, cols):
    """(rows * cols, 2) centres (x, y) of the regions, in image sides (0..1), row-major."""
    y = (np.arange(rows) + 0.5) / rows
    x = (np.arange(cols) + 0.5) / cols
    yy, xx = np.meshgrid(y, x, indexing="ij")
    return np.stack([xx.reshape(-1), yy.reshape(-1)], axis=-1).astype("float32")


@simmim_export
class RelationalAttention(keras.layers.Layer):
    """Question → anchor position → attention over regions biased by their
    offset from the anchor (the "anchor, then compare" of SARN, Shanahan et
    al. 2018, with the anchor found by soft attention).

    1. Anchor: a query made from the question attends over the regions (one
       head); the anchor's position is the attention-weighted mean of the
       region centres (a soft argmax), so it lands between the regions an
       object covers.
    2. Relation: `num_heads` heads with queries from the question attend
       over the regions; each head's scores get a learned function (a small
       MLP) of the region's offset from the anchor: dx, dy, |dx|, |dy| and
       the squared distance. A head can then prefer the nearest object other
       than the anchor, the furthest, those to its left, ... whatever the
       question asks.

    Args:
        num_heads: int. Heads of the relation step.
        key_dim: int. Size of each head.
        grid_shape: (int, int). Rows and columns of the region grid.

    Call arguments:
        question: (batch, dim), the question summary (masked mean of words).
        regions: (batch, rows * cols, dim).

    Returns:
        (features, anchor_weights, relation_weights): (batch, dim), (batch,
        regions) and (batch, heads, regions).

    Example:
    >>> layer = RelationalAttention(num_heads=2, key_dim=8, grid_shape=(3, 3))
    >>> f, a, w = layer(np.zeros((1, 16)), np.zeros((1, 9, 16)))
    >>> f.shape, a.shape, w.shape
    ((1, 16), (1, 9), (1, 2, 9))
    """

    def __init__(self, num_heads, key_dim, grid_shape, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.grid_shape = tuple(grid_shape)

    def build(self, question_shape, regions_shape):
        policy = self.dtype_policy
        dim = regions_shape[-1]
        inner = self.num_heads * self.key_dim
        self.question_norm = LayerNorm(1e-5, name="question_norm", dtype=policy)
        self.region_norm = LayerNorm(1e-5, name="region_norm", dtype=policy)
        self.anchor_query = keras.layers.Dense(self.key_dim, name="anchor_query", dtype=policy)
        self.anchor_key = keras.layers.Dense(self.key_dim, name="anchor_key", dtype=policy)
        self.query = keras.layers.Dense(inner, name="query", dtype=policy)
        self.key = keras.layers.Dense(inner, name="key", dtype=policy)
        self.value = keras.layers.Dense(inner, name="value", dtype=policy)
        self.output_dense = keras.layers.Dense(dim, name="output", dtype=policy)
        self.offset_hidden = keras.layers.Dense(
            OFFSET_HIDDEN, activation="gelu", name="offset_hidden", dtype=policy
        )
        self.offset_bias = keras.layers.Dense(self.num_heads, name="offset_bias", dtype=policy)
        self.question_norm.build(question_shape)
        self.region_norm.build(regions_shape)
        for layer in (self.anchor_query, self.query):
            layer.build(question_shape)
        for layer in (self.anchor_key, self.key, self.value):
            layer.build(regions_shape)
        self.output_dense.build((question_shape[0], inner))
        self.offset_hidden.build((None, None, 5))
        self.offset_bias.build((None, None, OFFSET_HIDDEN))

    def call(self, question, regions):
        dtype = self.compute_dtype
        q = self.question_norm(question)  # (batch, dim)
        r = self.region_norm(regions)  # (batch, regions, dim)
        scale = ops.cast(1.0 / np.sqrt(self.key_dim), dtype)
        # 1. Anchor: (batch, regions) weights, then a soft argmax of the centres.
        anchor_scores = ops.sum(
            ops.expand_dims(self.anchor_query(q), 1) * self.anchor_key(r), axis=-1
        )
        anchor_weights = ops.softmax(ops.cast(anchor_scores * scale, "float32"), axis=-1)
        centres = ops.convert_to_tensor(region_centres(*self.grid_shape), dtype="float32")
        anchor = ops.matmul(anchor_weights, centres)  # (batch, 2)
        # 2. Offsets of every region from the anchor: (batch, regions, 5).
        offset = ops.expand_dims(centres, 0) - ops.expand_dims(anchor, 1)
        features = ops.concatenate(
            [offset, ops.abs(offset), ops.sum(offset * offset, axis=-1, keepdims=True)], axis=-1
        )
        bias = self.offset_bias(self.offset_hidden(ops.cast(features, dtype)))  # (b, R, heads)
        bias = ops.transpose(bias, (0, 2, 1))  # (batch, heads, regions)
        batch, length = ops.shape(r)[0], ops.shape(r)[1]
        queries = ops.reshape(self.query(q), (batch, self.num_heads, 1, self.key_dim))
        keys = ops.transpose(
            ops.reshape(self.key(r), (batch, length, self.num_heads, self.key_dim)), (0, 2, 3, 1)
        )  # (batch, heads, key_dim, regions)
        values = ops.transpose(
            ops.reshape(self.value(r), (batch, length, self.num_heads, self.key_dim)), (0, 2, 1, 3)
        )  # (batch, heads, regions, key_dim)
        scores = ops.squeeze(ops.matmul(queries * scale, keys), 2)  # (batch, heads, regions)
        scores = ops.cast(scores, "float32") + ops.cast(bias, "float32")
        weights = ops.softmax(scores, axis=-1)
        read = ops.matmul(ops.expand_dims(ops.cast(weights, dtype), 2), values)  # (b, h, 1, k)
        read = ops.reshape(read, (batch, self.num_heads * self.key_dim))
        return (
            self.output_dense(read),
            ops.cast(anchor_weights, dtype),
            ops.cast(weights, dtype),
        )

    def compute_output_spec(self, question, regions):
        return (
            keras.KerasTensor(question.shape, dtype=self.compute_dtype),
            keras.KerasTensor(regions.shape[:2], dtype=self.compute_dtype),
            keras.KerasTensor(
                (regions.shape[0], self.num_heads, regions.shape[1]), dtype=self.compute_dtype
            ),
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "key_dim": self.key_dim,
                "grid_shape": list(self.grid_shape),
            }
        )
        return config
