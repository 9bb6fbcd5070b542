"""Pre-norm residual MLP over each token."""

import keras

from simmim_tf.api_export import simmim_export
from simmim_tf.layers.layer_norm import LayerNorm


@simmim_export
class FeedForward(keras.layers.Layer):
    """`x + MLP(LN(x))`, token by token.

    After the textual attention of the sequential fusion, it lets each
    region combine what it is with what the question found in the image
    (e.g. its distance to the object the question names), which an attention
    alone, a weighted sum, cannot compute.

    Args:
        intermediate_dim: int. Hidden size (GELU).
        dropout: float. Dropout on the output.

    Call arguments:
        x: (batch, tokens, dim).

    Returns:
        (batch, tokens, dim).

    Example:
    >>> FeedForward(32)(np.zeros((1, 4, 16))).shape
    (1, 4, 16)
    """

    def __init__(self, intermediate_dim, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout

    def build(self, x_shape):
        policy = self.dtype_policy
        self.norm = LayerNorm(1e-5, name="norm", dtype=policy)
        self.dense_in = keras.layers.Dense(
            self.intermediate_dim, activation="gelu", name="dense_in", dtype=policy
        )
        self.dense_out = keras.layers.Dense(x_shape[-1], name="dense_out", dtype=policy)
        self.output_dropout = keras.layers.Dropout(self.dropout, dtype=policy)
        self.norm.build(x_shape)
        self.dense_in.build(x_shape)
        self.dense_out.build(tuple(x_shape[:-1]) + (self.intermediate_dim,))

    def call(self, x, training=None):
        h = self.dense_out(self.dense_in(self.norm(x)))
        return x + self.output_dropout(h, training=training)

    def compute_output_shape(self, x_shape):
        return x_shape

    def get_config(self):
        config = super().get_config()
        config.update({"intermediate_dim": self.intermediate_dim, "dropout": self.dropout})
        return config
