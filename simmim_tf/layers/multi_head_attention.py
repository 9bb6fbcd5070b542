"""Multi-head scaled dot-product attention that returns its weights."""

import math

import keras
from keras import ops

from simmim_tf.api_export import simmim_export
from simmim_tf.layers.quantization_points import quantization_point

# How far below a row's lowest score masked keys are put: e^-20 ≈ 2e-9.
MASK_MARGIN = 20.0


@simmim_export
class MultiHeadAttention(keras.layers.Layer):
    """softmax(Q Kᵀ / √d) V over several heads, returning the weights.

    Written with `keras.ops` for every backend and for a clean TFLite graph:
    4-D transposes, BATCH_MATMUL, SOFTMAX and elementwise ops only, which the
    GPU delegate and full-integer quantization both accept.

    Masked keys are pushed 20 below the row's lowest score before the
    softmax, so each gets at most e^-20 ≈ 2e-9 of the weight of the row's
    best key. Not `keras.layers.Softmax`'s -1e9: that value would set the
    int8 calibration range of the scores and leave no resolution for the real
    ones. Not renormalising after the softmax either: its DIV crashed the int8
    kernel (`div.cc: data[i] != zero_point`) when a row's kept weight
    quantized to zero. The masking uses SUB/MUL/REDUCE_MIN whose operands
    broadcast the way the GPU delegate accepts.

    Args:
        num_heads: int. Number of attention heads.
        key_dim: int. Size of each head's queries and keys (and values).
        output_dim: int or None. Size of the output projection; None uses the
            query's last dimension.
        dropout: float. Dropout rate on the attention weights.

    Call arguments:
        query: (batch, queries, query_dim).
        value: (batch, keys, value_dim); serves as keys and values.
        key_mask: optional bool (batch, keys); False marks keys to ignore.
        attention_bias: optional float (heads, queries, keys), added to the
            scores before the softmax (a relative position bias).

    Returns:
        (outputs, weights): (batch, queries, output_dim) and
        (batch, heads, queries, keys), the weights summing to 1, masked keys
        holding less than 1e-8 of it.

    Example:
    >>> attn = MultiHeadAttention(num_heads=2, key_dim=8)
    >>> out, w = attn(np.zeros((1, 3, 16)), np.zeros((1, 5, 16)))
    >>> w.shape
    (1, 2, 3, 5)
    """

    def __init__(self, num_heads, key_dim, output_dim=None, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.output_dim = output_dim
        self.dropout = dropout

    def build(self, query_shape, value_shape, key_mask_shape=None, attention_bias_shape=None):
        inner = self.num_heads * self.key_dim
        self.query_dense = keras.layers.Dense(inner, name="query", dtype=self.dtype_policy)
        self.key_dense = keras.layers.Dense(inner, name="key", dtype=self.dtype_policy)
        self.value_dense = keras.layers.Dense(inner, name="value", dtype=self.dtype_policy)
        out_dim = self.output_dim or query_shape[-1]
        self.output_dense = keras.layers.Dense(out_dim, name="output", dtype=self.dtype_policy)
        self.weights_dropout = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)
        self.query_dense.build(query_shape)
        self.key_dense.build(value_shape)
        self.value_dense.build(value_shape)
        self.output_dense.build(tuple(query_shape[:-1]) + (inner,))

    def split_heads(self, x):
        """(batch, length, heads * key_dim) → (batch, heads, length, key_dim)."""
        batch, length = ops.shape(x)[0], ops.shape(x)[1]
        x = ops.reshape(x, (batch, length, self.num_heads, self.key_dim))
        return ops.transpose(x, (0, 2, 1, 3))  # (batch, heads, length, key_dim)

    def call(self, query, value, key_mask=None, attention_bias=None, training=None):
        q = self.split_heads(self.query_dense(query))  # (batch, heads, queries, key_dim)
        k = self.split_heads(self.key_dense(value))  # (batch, heads, keys, key_dim)
        v = self.split_heads(self.value_dense(value))  # (batch, heads, keys, key_dim)
        return self.attend(q, k, v, key_mask, attention_bias, training)

    def attend(self, q, k, v, key_mask=None, attention_bias=None, training=None):
        """The attention from projected heads, (batch, heads, length, key_dim)
        each: what a decoder with a key/value cache calls with its cached
        keys and values. Returns `call`'s (outputs, weights)."""
        q = quantization_point(
            self, "scaled_query", q * ops.cast(1.0 / math.sqrt(self.key_dim), q.dtype)
        )
        scores = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2)))  # (batch, heads, queries, keys)
        scores = quantization_point(self, "scores", scores)
        # Softmax in float32 so that mixed float16 does not overflow.
        scores = ops.cast(scores, "float32")
        if attention_bias is not None:
            scores = scores + ops.cast(attention_bias, "float32")  # broadcast over the batch
        if key_mask is not None:
            num_keys = ops.shape(key_mask)[1]
            dropped = 1.0 - ops.reshape(ops.cast(key_mask, "float32"), (-1, 1, 1, num_keys))
            floor = (
                ops.min(scores, axis=-1, keepdims=True) - MASK_MARGIN
            )  # (batch, heads, queries, 1)
            # scores - (scores - floor) * dropped: masked keys land on `floor`.
            scores = scores - (scores - floor) * dropped
        scores = quantization_point(self, "masked_scores", scores)
        weights = ops.cast(ops.softmax(scores, axis=-1), self.compute_dtype)
        # TFLite's int8 softmax writes its output on the fixed scale 1/256.
        weights = quantization_point(self, "weights", weights, fixed_range=(0.0, 255 / 256))
        attended = ops.matmul(self.weights_dropout(weights, training=training), v)
        attended = quantization_point(self, "attended", attended)
        attended = ops.transpose(attended, (0, 2, 1, 3))  # (batch, queries, heads, key_dim)
        batch, length = ops.shape(attended)[0], ops.shape(attended)[1]
        attended = ops.reshape(attended, (batch, length, self.num_heads * self.key_dim))
        return self.output_dense(attended), weights

    def compute_output_spec(self, query, value, key_mask=None, attention_bias=None, training=None):
        out_dim = self.output_dim or query.shape[-1]
        out = keras.KerasTensor(query.shape[:-1] + (out_dim,), dtype=self.compute_dtype)
        w = keras.KerasTensor(
            (query.shape[0], self.num_heads, query.shape[1], value.shape[1]),
            dtype=self.compute_dtype,
        )
        return out, w

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "key_dim": self.key_dim,
                "output_dim": self.output_dim,
                "dropout": self.dropout,
            }
        )
        return config
