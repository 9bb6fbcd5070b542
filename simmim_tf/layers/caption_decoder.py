"""A causal text decoder over image regions, with a key/value cache for
word-by-word generation that exports to TFLite without control flow."""

import keras
import keras_hub
from keras import ops

from simmim_tf.api_export import simmim_export
from simmim_tf.layers.cross_attention_block import CrossAttentionBlock
from simmim_tf.layers.feed_forward import FeedForward
from simmim_tf.layers.layer_norm import LayerNorm
from simmim_tf.layers.multi_head_attention import MultiHeadAttention
from simmim_tf.layers.question_encoder import one_hot_embeddings

# Added to the scores of future positions in the teacher-forced pass. Only
# training and Keras evaluation run it; the exported one-step decoder masks
# by `MultiHeadAttention`'s key mask instead (no large constant to calibrate).
CAUSAL_BIAS = -1e9


@simmim_export
class CaptionDecoderBlock(keras.layers.Layer):
    """Pre-norm decoder block: `x + SelfAttention(LN(x))` (causal), then
    `CrossAttentionBlock` over the image regions, then `FeedForward`.

    Args:
        num_heads: int. Attention heads.
        key_dim: int. Size of each head.
        intermediate_dim: int. MLP hidden size.
        dropout: float. Dropout rate.

    Call arguments:
        x: (batch, tokens, dim).
        regions: (batch, regions, dim).
        attention_bias: (1, tokens, tokens), 0 where a token may look and
            `CAUSAL_BIAS` where it may not.

    Returns:
        (batch, tokens, dim).
    """

    def __init__(self, num_heads, key_dim, intermediate_dim, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout

    def build(self, x_shape, regions_shape, attention_bias_shape=None):
        policy = self.dtype_policy
        self.self_norm = LayerNorm(1e-5, name="self_norm", dtype=policy)
        self.self_attention = MultiHeadAttention(
            self.num_heads, self.key_dim, dropout=self.dropout, name="self_attention", dtype=policy
        )
        self.self_dropout = keras.layers.Dropout(self.dropout, dtype=policy)
        self.cross_attention = CrossAttentionBlock(
            self.num_heads, self.key_dim, self.dropout, name="cross_attention", dtype=policy
        )
        self.feed_forward = FeedForward(
            self.intermediate_dim, self.dropout, name="feed_forward", dtype=policy
        )
        self.self_norm.build(x_shape)
        self.self_attention.build(x_shape, x_shape)
        self.cross_attention.build(x_shape, regions_shape)
        self.feed_forward.build(x_shape)

    def call(self, x, regions, attention_bias=None, training=None):
        h = self.self_norm(x)
        attended, _ = self.self_attention(h, h, attention_bias=attention_bias, training=training)
        x = x + self.self_dropout(attended, training=training)
        return self._read_image(x, regions, training)

    def _read_image(self, x, regions, training=None):
        x, _ = self.cross_attention(x, regions, training=training)
        return self.feed_forward(x, training=training)

    def step(self, x, regions, keys, values, write, key_mask):
        """One new token against the cache.

        x: (batch, 1, dim), the new token; keys, values: (batch, heads,
        length, key_dim), this block's cache; write: (batch, 1, length, 1),
        1.0 at the new token's position; key_mask: bool (batch, length),
        True up to and including it. Returns (x, keys, values) with the
        new token's key and value written into the cache.
        """
        attention = self.self_attention
        h = self.self_norm(x)
        length = ops.shape(keys)[2]
        # The new key and value tiled over the positions, then blended in
        # where `write` is 1: elementwise ops the GPU delegate accepts (no
        # DYNAMIC_UPDATE_SLICE).
        new_keys = ops.tile(attention.split_heads(attention.key_dense(h)), (1, 1, length, 1))
        new_values = ops.tile(attention.split_heads(attention.value_dense(h)), (1, 1, length, 1))
        keys = keys + (new_keys - keys) * write
        values = values + (new_values - values) * write
        q = attention.split_heads(attention.query_dense(h))
        attended, _ = attention.attend(q, keys, values, key_mask=key_mask)
        x = x + attended
        return self._read_image(x, regions), keys, values

    def compute_output_shape(self, x_shape, regions_shape, attention_bias_shape=None):
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


@simmim_export
class CaptionDecoder(keras.layers.Layer):
    """Token ids and image regions → next-token logits, causally.

    Token embedding (a one-hot matrix product, as `QuestionEncoder` does,
    for the TFLite GPU delegate), keras-hub's `PositionEmbedding`,
    `num_layers` `CaptionDecoderBlock`s, a final layer norm and a linear map
    to the vocabulary.

    `call` is the teacher-forced pass over a whole sequence (training).
    `step` is one token against a key/value cache (generation): each new
    word costs one token's work, and its graph has no control flow, slices
    that drop axes or tensors above 4-D, so that it converts to a TFLite
    one-step decoder the GPU delegate accepts. The cache is one tensor,
    (batch, 2 * num_layers * num_heads, max_length, key_dim): per block its
    keys' heads, then its values' heads. `step` and `call` give the same
    logits (tests/test_captioning.py).

    Args:
        vocabulary_size: int. Caption vocabulary size.
        max_length: int. Longest input sequence (start token included).
        hidden_dim: int. Feature size; the regions must have it.
        num_layers: int. Decoder blocks.
        num_heads: int. Attention heads.
        intermediate_dim: int. MLP hidden size.
        dropout: float. Dropout rate.

    Call arguments:
        token_ids: int (batch, tokens), tokens <= max_length.
        regions: (batch, regions, hidden_dim).

    Returns:
        logits (batch, tokens, vocabulary_size).

    Example:
    >>> decoder = CaptionDecoder(20, max_length=8, hidden_dim=16, num_layers=1, num_heads=2,
    ...                          intermediate_dim=32)
    >>> decoder(np.ones((2, 5), "int32"), np.zeros((2, 9, 16))).shape
    (2, 5, 20)
    """

    def __init__(
        self,
        vocabulary_size,
        max_length,
        hidden_dim,
        num_layers,
        num_heads,
        intermediate_dim,
        dropout=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if hidden_dim % num_heads:
            raise ValueError(f"hidden_dim {hidden_dim} is not divisible by num_heads {num_heads}")
        self.vocabulary_size = vocabulary_size
        self.max_length = max_length
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.key_dim = hidden_dim // num_heads

    def build(self, token_ids_shape, regions_shape):
        policy = self.dtype_policy
        self.token_embeddings = self.add_weight(
            shape=(self.vocabulary_size, self.hidden_dim),
            initializer=keras.initializers.RandomNormal(stddev=0.02),
            name="token_embeddings",
        )
        self.position_embedding = keras_hub.layers.PositionEmbedding(
            self.max_length, name="position_embedding", dtype=policy
        )
        self.embedding_dropout = keras.layers.Dropout(self.dropout, dtype=policy)
        self.blocks = [
            CaptionDecoderBlock(
                self.num_heads,
                self.key_dim,
                self.intermediate_dim,
                self.dropout,
                name=f"block_{i}",
                dtype=policy,
            )
            for i in range(self.num_layers)
        ]
        self.final_norm = LayerNorm(1e-5, name="final_norm", dtype=policy)
        self.logits_dense = keras.layers.Dense(self.vocabulary_size, name="logits", dtype=policy)
        x_shape = (token_ids_shape[0], self.max_length, self.hidden_dim)
        self.position_embedding.build(x_shape)
        for block in self.blocks:
            block.build(x_shape, regions_shape)
        self.final_norm.build(x_shape)
        self.logits_dense.build(x_shape)

    def _embed_tokens(self, token_ids):
        return one_hot_embeddings(token_ids, self.token_embeddings, self.compute_dtype)

    def _logits(self, x):
        return self.logits_dense(self.final_norm(x))

    def call(self, token_ids, regions, training=None):
        x = self._embed_tokens(token_ids)
        x = self.embedding_dropout(x + self.position_embedding(x), training=training)
        length = ops.shape(token_ids)[1]
        positions = ops.arange(length)
        future = ops.cast(ops.expand_dims(positions, 0) > ops.expand_dims(positions, 1), "float32")
        bias = ops.expand_dims(future * CAUSAL_BIAS, 0)  # (1, tokens, tokens)
        for block in self.blocks:
            x = block(x, regions, attention_bias=bias, training=training)
        return self._logits(x)

    def cache_shape(self, batch_size):
        """The shape of `step`'s cache for `batch_size` sequences."""
        return (batch_size, 2 * self.num_layers * self.num_heads, self.max_length, self.key_dim)

    def empty_cache(self, batch_size):
        """A cache before the first token: zeros of `cache_shape`."""
        return ops.zeros(self.cache_shape(batch_size), dtype=self.compute_dtype)

    def step(self, token_ids, positions, regions, cache):
        """One token per sequence against the cache.

        token_ids: int (batch, 1), the last token; positions: int (batch,
        1), its position (0 for the start token); regions: (batch, regions,
        hidden_dim); cache: `cache_shape(batch)`. Returns (logits (batch,
        vocabulary_size), the cache with this token's keys and values).
        """
        slots = ops.reshape(ops.arange(self.max_length, dtype="int32"), (1, -1))
        positions = ops.reshape(ops.cast(positions, "int32"), (-1, 1))
        at = ops.cast(ops.equal(positions, slots), self.compute_dtype)  # (batch, max_length)
        key_mask = ops.less_equal(slots, positions)  # (batch, max_length)
        x = self._embed_tokens(token_ids)  # (batch, 1, dim)
        position = ops.matmul(at, ops.cast(self.position_embedding.position_embeddings, x.dtype))
        x = x + ops.expand_dims(position, 1)
        write = ops.reshape(at, (-1, 1, self.max_length, 1))
        heads = self.num_heads
        updated = []
        for i, block in enumerate(self.blocks):
            start = 2 * i * heads
            keys = cache[:, start : start + heads]
            values = cache[:, start + heads : start + 2 * heads]
            x, keys, values = block.step(x, regions, keys, values, write, key_mask)
            updated += [keys, values]
        logits = self._logits(x)  # (batch, 1, vocabulary)
        return ops.reshape(logits, (-1, self.vocabulary_size)), ops.concatenate(updated, axis=1)

    def compute_output_shape(self, token_ids_shape, regions_shape):
        return tuple(token_ids_shape) + (self.vocabulary_size,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "max_length": self.max_length,
                "hidden_dim": self.hidden_dim,
                "num_layers": self.num_layers,
                "num_heads": self.num_heads,
                "intermediate_dim": self.intermediate_dim,
                "dropout": self.dropout,
            }
        )
        return config
