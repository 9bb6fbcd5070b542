"""Question encoder: token and position embedding, then transformer blocks."""

import keras
import keras_hub
from keras import ops

from simmim_tf.api_export import simmim_export
from simmim_tf.layers.transformer_block import TransformerBlock


@simmim_export
class QuestionEncoder(keras.layers.Layer):
    """Encodes padded token ids into contextual word features.

    Token ids are looked up as one-hot × embedding matrix rather than with
    `ops.take`: under TensorFlow, `take` adds a `where(ids < 0, ids + n, ids)`
    on the int32 ids, a SELECT_V2 on int32 tensors that the TFLite GPU
    delegate rejects, and `ops.one_hot` casts the ids to int64. The one-hot
    rows here come from an int32 EQUAL against `arange(vocabulary_size)`.
    Positions use keras-hub's `PositionEmbedding`.

    Args:
        vocabulary_size: int. Number of token ids, padding (0) included.
        max_sequence_length: int. Longest question, in tokens.
        hidden_dim: int. Size of each word feature.
        num_layers: int. Number of transformer blocks.
        num_heads: int. Attention heads per block.
        intermediate_dim: int. MLP hidden size per block.
        dropout: float. Dropout rate.

    Call arguments:
        token_ids: int (batch, tokens).
        padding_mask: bool (batch, tokens), True for real tokens.

    Returns:
        (batch, tokens, hidden_dim).
    """

    def __init__(
        self,
        vocabulary_size,
        max_sequence_length,
        hidden_dim,
        num_layers,
        num_heads,
        intermediate_dim,
        dropout=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.vocabulary_size = vocabulary_size
        self.max_sequence_length = max_sequence_length
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout

    def build(self, token_ids_shape, padding_mask_shape=None):
        policy = self.dtype_policy
        self.token_embeddings = self.add_weight(
            shape=(self.vocabulary_size, self.hidden_dim),
            initializer=keras.initializers.RandomNormal(stddev=0.02),
            name="token_embeddings",
        )
        self.position_embedding = keras_hub.layers.PositionEmbedding(
            self.max_sequence_length, name="position_embedding", dtype=policy
        )
        features_shape = tuple(token_ids_shape) + (self.hidden_dim,)
        self.position_embedding.build(features_shape)
        self.blocks = [
            TransformerBlock(
                self.num_heads,
                self.hidden_dim // self.num_heads,
                self.intermediate_dim,
                self.dropout,
                name=f"block_{i}",
                dtype=policy,
            )
            for i in range(self.num_layers)
        ]
        for block in self.blocks:
            block.build(features_shape)
        self.embedding_dropout = keras.layers.Dropout(self.dropout, dtype=policy)

    def call(self, token_ids, padding_mask, training=None):
        x = one_hot_embeddings(token_ids, self.token_embeddings, self.compute_dtype)
        x = x + self.position_embedding(x)
        x = self.embedding_dropout(x, training=training)
        for block in self.blocks:
            x = block(x, padding_mask=padding_mask, training=training)
        return x

    def compute_output_shape(self, token_ids_shape, padding_mask_shape=None):
        return tuple(token_ids_shape) + (self.hidden_dim,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "max_sequence_length": self.max_sequence_length,
                "hidden_dim": self.hidden_dim,
                "num_layers": self.num_layers,
                "num_heads": self.num_heads,
                "intermediate_dim": self.intermediate_dim,
                "dropout": self.dropout,
            }
        )
        return config


def one_hot_embeddings(token_ids, table, dtype):
    """int (batch, tokens) → (batch, tokens, dim) rows of `table` (vocabulary,
    dim), as a one-hot matrix product: an int32 EQUAL against the ids, not
    `ops.one_hot` (it casts to int64) nor a GATHER of a 2-D table (the GPU
    delegate refuses both)."""
    batch, length = ops.shape(token_ids)[0], ops.shape(token_ids)[1]
    vocabulary_size, dim = table.shape
    flat_ids = ops.reshape(ops.cast(token_ids, "int32"), (-1, 1))  # (batch * tokens, 1)
    vocabulary = ops.reshape(ops.arange(vocabulary_size, dtype="int32"), (1, -1))
    one_hot = ops.cast(ops.equal(flat_ids, vocabulary), dtype)  # (batch * tokens, vocabulary)
    # The ReLU is a no-op on 0/1 values; it keeps the TFLite converter from
    # rewriting the product into EMBEDDING_LOOKUP, whose int8 kernel copies
    # table bytes into an output of another scale (wrong embeddings).
    one_hot = ops.relu(one_hot)
    x = ops.matmul(one_hot, ops.cast(table, dtype))
    return ops.reshape(x, (batch, length, dim))
