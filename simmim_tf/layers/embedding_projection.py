"""EmbeddingProjection: a retrieval tower's last step, tokens to one unit vector."""

import keras
from keras import ops

from simmim_tf.api_export import simmim_export
from simmim_tf.layers.layer_norm import LayerNorm


@simmim_export
class EmbeddingProjection(keras.layers.Layer):
    """Mean over the tokens (padding left out), layer norm, a linear
    projection, then L2 normalisation: the pooled, projected and normalised
    embedding of CLIP's and SigLIP's towers.

    Args:
        embedding_dim: int. Size of the embedding.

    Call arguments:
        tokens: (batch, tokens, dim), regions or words.
        padding_mask: optional bool (batch, tokens), True for real tokens.

    Returns:
        (batch, embedding_dim), each row of unit length.
    """

    def __init__(self, embedding_dim, **kwargs):
        super().__init__(**kwargs)
        self.embedding_dim = embedding_dim
        self.norm = LayerNorm(1e-5, name="norm", dtype=self.dtype_policy)
        self.dense = keras.layers.Dense(embedding_dim, name="dense", dtype=self.dtype_policy)

    def build(self, tokens_shape, padding_mask_shape=None):
        self.norm.build(tokens_shape[:1] + tokens_shape[2:])
        self.dense.build(tokens_shape[:1] + tokens_shape[2:])
        self.built = True

    def call(self, tokens, padding_mask=None):
        if padding_mask is None:
            pooled = ops.mean(tokens, axis=1)  # (batch, dim)
        else:
            mask = ops.expand_dims(ops.cast(padding_mask, tokens.dtype), -1)  # (batch, tokens, 1)
            pooled = ops.sum(tokens * mask, axis=1) / ops.maximum(ops.sum(mask, axis=1), 1.0)
        x = self.dense(self.norm(pooled))  # (batch, embedding_dim)
        return x * ops.rsqrt(ops.sum(x * x, axis=-1, keepdims=True) + 1e-12)

    def compute_output_shape(self, tokens_shape, padding_mask_shape=None):
        return (tokens_shape[0], self.embedding_dim)

    def get_config(self):
        config = super().get_config()
        config.update({"embedding_dim": self.embedding_dim})
        return config
