"""Streaming memory: learned slots carried over a clip, updated once per frame."""

import numbers

import keras
from keras import ops

from simmim_tf.api_export import simmim_export
from simmim_tf.layers.cross_attention_block import CrossAttentionBlock
from simmim_tf.layers.transformer_block import TransformerBlock
from simmim_tf.preprocessing.time_features import TIME_PERIODS, time_features


@simmim_export
class StreamingMemory(keras.layers.Layer):
    """K learned slots that read each frame's regions in turn.

    The state is the slots, (batch, K, dim): it starts as learned vectors
    and, at every frame, (1) reads the frame's regions (plus a projection of
    the frame's time features) by multi-head cross-attention and (2)
    updates itself by self-attention and an MLP. Its size does not grow
    with the clip, so a device can run a live stream one frame at a time
    (`initial_state`, then `step` per frame) with constant memory. The
    question is not needed until the end: the slots are read afterwards.

    Args:
        num_slots: int. Slots (K).
        num_heads: int. Attention heads of the read and the update.
        intermediate_dim: int. MLP hidden size of the update.
        dropout: float. Dropout rate.

    Call arguments:
        clip_regions: (batch, frames, regions, dim), frames in order.

    Returns:
        (state, read_weights): the slots after the last frame (batch, K,
        dim) and every frame's read attention (batch, frames, heads, K,
        regions).

    Example:
    >>> memory = StreamingMemory(num_slots=4, num_heads=2, intermediate_dim=32)
    >>> state, weights = memory(np.zeros((1, 8, 9, 16)))
    >>> state.shape, weights.shape
    ((1, 4, 16), (1, 8, 2, 4, 9))
    """

    def __init__(self, num_slots, num_heads, intermediate_dim, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_slots = num_slots
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout

    def build(self, clip_regions_shape):
        policy = self.dtype_policy
        dim = clip_regions_shape[-1]
        key_dim = dim // self.num_heads
        self.slots = self.add_weight(
            shape=(1, self.num_slots, dim),
            initializer=keras.initializers.RandomNormal(stddev=0.02),
            name="slots",
        )
        self.time_projection = keras.layers.Dense(dim, name="time_projection", dtype=policy)
        self.time_projection.build((1, 2 * len(TIME_PERIODS)))
        self.read = CrossAttentionBlock(
            self.num_heads, key_dim, self.dropout, name="read", dtype=policy
        )
        self.update = TransformerBlock(
            self.num_heads,
            key_dim,
            self.intermediate_dim,
            self.dropout,
            name="update",
            dtype=policy,
        )
        state_shape = (clip_regions_shape[0], self.num_slots, dim)
        self.read.build(state_shape, (clip_regions_shape[0], clip_regions_shape[2], dim))
        self.update.build(state_shape)

    def initial_state(self, batch_size):
        """(batch, K, dim): the learned slots, before any frame."""
        # TILE rather than broadcast_to: the GPU delegate has no BROADCAST_TO.
        return ops.tile(ops.cast(self.slots, self.compute_dtype), (batch_size, 1, 1))

    def step(self, state, regions, when, training=None):
        """The state after reading one frame's regions (batch, regions, dim);
        `when`: the frame's `time_features` (1 or batch, features), or its
        index in the clip (an int). Returns (state (batch, K, dim), read
        weights (batch, heads, K, regions))."""
        if isinstance(when, numbers.Integral):
            when = time_features(when)[None]
        when = ops.cast(when, self.compute_dtype)
        regions = regions + ops.expand_dims(self.time_projection(when), 1)
        state, weights = self.read(state, regions, training=training)
        return self.update(state, training=training), weights

    def call(self, clip_regions, training=None):
        state = self.initial_state(ops.shape(clip_regions)[0])
        reads = []
        for frame in range(clip_regions.shape[1]):
            state, weights = self.step(state, clip_regions[:, frame], frame, training=training)
            reads.append(weights)
        return state, ops.stack(reads, axis=1)

    def compute_output_spec(self, clip_regions, training=None):
        batch, frames, regions, dim = clip_regions.shape
        return (
            keras.KerasTensor((batch, self.num_slots, dim), dtype=self.compute_dtype),
            keras.KerasTensor(
                (batch, frames, self.num_heads, self.num_slots, regions), dtype=self.compute_dtype
            ),
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_slots": self.num_slots,
                "num_heads": self.num_heads,
                "intermediate_dim": self.intermediate_dim,
                "dropout": self.dropout,
            }
        )
        return config
