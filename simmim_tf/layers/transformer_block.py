"""Pre-norm transformer block: self-attention then an MLP."""

import keras

from simmim_tf.api_export import simmim_export
from simmim_tf.layers.cross_attention_block import CrossAttentionBlock
from simmim_tf.layers.layer_norm import LayerNorm


@simmim_export
class TransformerBlock(keras.layers.Layer):
    """`x + SelfAttention(LN(x))`, then `x + MLP(LN(x))`.

    Used by the question encoder (with the padding mask) and by the semantic
    memory's update step (no mask). keras-hub's `TransformerEncoder` is not
    used because its masked softmax writes -1e9 into the scores (see
    `MultiHeadAttention`).

    Args:
        num_heads: int. Number of attention heads.
        key_dim: int. Size of each head.
        intermediate_dim: int. Hidden size of the MLP.
        dropout: float. Dropout rate.

    Call arguments:
        x: (batch, tokens, dim).
        padding_mask: optional bool (batch, tokens).
        attention_bias: optional (heads, tokens, tokens), added to the
            attention scores.

    Returns:
        (batch, tokens, dim).
    """

    def __init__(self, num_heads, key_dim, intermediate_dim, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout

    def build(self, x_shape, padding_mask_shape=None, attention_bias_shape=None):
        policy = self.dtype_policy
        dim = x_shape[-1]
        self.self_attention = CrossAttentionBlock(
            self.num_heads, self.key_dim, self.dropout, name="self_attention", dtype=policy
        )
        self.mlp_norm = LayerNorm(1e-5, name="mlp_norm", dtype=policy)
        self.mlp_in = keras.layers.Dense(
            self.intermediate_dim, activation="gelu", name="mlp_in", dtype=policy
        )
        self.mlp_out = keras.layers.Dense(dim, name="mlp_out", dtype=policy)
        self.mlp_dropout = keras.layers.Dropout(self.dropout, dtype=policy)
        self.self_attention.build(x_shape, x_shape)
        self.mlp_norm.build(x_shape)
        self.mlp_in.build(x_shape)
        self.mlp_out.build(tuple(x_shape[:-1]) + (self.intermediate_dim,))

    def call(self, x, padding_mask=None, attention_bias=None, training=None):
        # The block's queries and context are the same stream; the context
        # norm inside CrossAttentionBlock is then a second, independent
        # pre-norm of the keys, which costs one LayerNorm and keeps one
        # attention mechanism for the whole package.
        x, _ = self.self_attention(
            x, x, context_mask=padding_mask, attention_bias=attention_bias, training=training
        )
        h = self.mlp_out(self.mlp_in(self.mlp_norm(x)))
        return x + self.mlp_dropout(h, training=training)

    def compute_output_shape(self, x_shape, padding_mask_shape=None, attention_bias_shape=None):
        return x_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "key_dim": self.key_dim,
                "intermediate_dim": self.intermediate_dim,
                "dropout": self.dropout,
            }
        )
        return config
