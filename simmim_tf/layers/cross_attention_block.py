"""Pre-norm residual cross-attention: queries from one stream, keys from another."""

import keras

from simmim_tf.api_export import simmim_export
from simmim_tf.layers.layer_norm import LayerNorm
from simmim_tf.layers.multi_head_attention import MultiHeadAttention


@simmim_export
class CrossAttentionBlock(keras.layers.Layer):
    """`query + MHA(LN(query), LN(context))`, returning the attention weights.

    The shared mechanism of `VisualAttention`, `TextualAttention` and the
    semantic memory's read step; those classes only name the two streams.

    Args:
        num_heads: int. Number of attention heads.
        key_dim: int. Size of each head.
        dropout: float. Dropout on the attention weights and the output.

    Call arguments:
        query: (batch, queries, dim).
        context: (batch, keys, dim).
        context_mask: optional bool (batch, keys); False marks padding.
        attention_bias: optional (heads, queries, keys), added to the scores.

    Returns:
        (features, weights): (batch, queries, dim), (batch, heads, queries, keys).
    """

    def __init__(self, num_heads, key_dim, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.dropout = dropout

    def build(self, query_shape, context_shape, context_mask_shape=None, attention_bias_shape=None):
        policy = self.dtype_policy
        self.query_norm = LayerNorm(1e-5, name="query_norm", dtype=policy)
        self.context_norm = LayerNorm(1e-5, name="context_norm", dtype=policy)
        self.attention = MultiHeadAttention(
            self.num_heads, self.key_dim, dropout=self.dropout, name="attention", dtype=policy
        )
        self.output_dropout = keras.layers.Dropout(self.dropout, dtype=policy)
        self.query_norm.build(query_shape)
        self.context_norm.build(context_shape)
        self.attention.build(query_shape, context_shape)

    def call(self, query, context, context_mask=None, attention_bias=None, training=None):
        attended, weights = self.attention(
            self.query_norm(query),
            self.context_norm(context),
            key_mask=context_mask,
            attention_bias=attention_bias,
            training=training,
        )
        return query + self.output_dropout(attended, training=training), weights

    def compute_output_spec(
        self, query, context, context_mask=None, attention_bias=None, training=None
    ):
        return (
            keras.KerasTensor(query.shape, dtype=self.compute_dtype),
            keras.KerasTensor(
                (query.shape[0], self.num_heads, query.shape[1], context.shape[1]),
                dtype=self.compute_dtype,
            ),
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {"num_heads": self.num_heads, "key_dim": self.key_dim, "dropout": self.dropout}
        )
        return config
