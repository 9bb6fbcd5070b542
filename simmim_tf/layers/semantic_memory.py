"""Semantic memory: learned slots that read both modalities and update themselves."""

import keras
from keras import ops

from simmim_tf.api_export import simmim_export
from simmim_tf.layers.cross_attention_block import CrossAttentionBlock
from simmim_tf.layers.transformer_block import TransformerBlock


@simmim_export
class SemanticMemory(keras.layers.Layer):
    """K learned memory slots, refined over N layers.

    The slots start as learned vectors plus a projection of the question's
    mean word feature, so that the first read already depends on the
    question (with identical starting slots for every question, the first
    read can only be generic).

    Each layer (1) reads: the slots attend, by multi-head cross-attention,
    over the concatenation of the visual and the textual features (padding
    words masked out); (2) updates: the slots exchange information by
    multi-head self-attention and pass through an MLP.

    Args:
        num_slots: int. Number of semantic-memory slots (K).
        num_layers: int. Number of read-and-update layers (N).
        num_heads: int. Attention heads in both steps.
        intermediate_dim: int. MLP hidden size of the update step.
        dropout: float. Dropout rate.

    Call arguments:
        visual: (batch, regions, dim), the image regions.
        textual: (batch, question_tokens, dim), the question words.
        padding_mask: bool (batch, question_tokens), True for real words.

    Returns:
        (memory, read_weights): the final slots (batch, num_slots, dim), and
        the last layer's read attention (batch, heads, num_slots,
        regions + question_tokens), regions first.

    Example:
    >>> memory = SemanticMemory(num_slots=4, num_layers=2, num_heads=2,
    ...                         intermediate_dim=32)
    >>> m, w = memory(np.zeros((1, 25, 16)), np.zeros((1, 6, 16)),
    ...               np.ones((1, 6), bool))
    >>> m.shape, w.shape
    ((1, 4, 16), (1, 2, 4, 31))
    """

    def __init__(self, num_slots, num_layers, num_heads, intermediate_dim, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_slots = num_slots
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout

    def build(self, visual_shape, textual_shape, padding_mask_shape=None):
        policy = self.dtype_policy
        dim = visual_shape[-1]
        key_dim = dim // self.num_heads
        self.slots = self.add_weight(
            shape=(1, self.num_slots, dim),
            initializer=keras.initializers.RandomNormal(stddev=0.02),
            name="slots",
        )
        self.question_projection = keras.layers.Dense(dim, name="question_projection", dtype=policy)
        self.question_projection.build((visual_shape[0], dim))
        memory_shape = (visual_shape[0], self.num_slots, dim)
        context_length = None
        if visual_shape[1] is not None and textual_shape[1] is not None:
            context_length = visual_shape[1] + textual_shape[1]
        context_shape = (visual_shape[0], context_length, dim)
        self.read_blocks, self.update_blocks = [], []
        for i in range(self.num_layers):
            read = CrossAttentionBlock(
                self.num_heads, key_dim, self.dropout, name=f"read_{i}", dtype=policy
            )
            update = TransformerBlock(
                self.num_heads,
                key_dim,
                self.intermediate_dim,
                self.dropout,
                name=f"update_{i}",
                dtype=policy,
            )
            read.build(memory_shape, context_shape)
            update.build(memory_shape)
            self.read_blocks.append(read)
            self.update_blocks.append(update)

    def call(self, visual, textual, padding_mask, training=None):
        batch, regions = ops.shape(visual)[0], ops.shape(visual)[1]
        context = ops.concatenate([visual, textual], axis=1)  # (batch, regions + tokens, dim)
        context_mask = ops.concatenate(
            [ops.ones((batch, regions), dtype="bool"), ops.cast(padding_mask, "bool")], axis=1
        )
        # Mean over the real words: (batch, dim).
        word_mask = ops.cast(padding_mask, self.compute_dtype)  # (batch, tokens)
        summed = ops.sum(textual * ops.expand_dims(word_mask, -1), axis=1)
        question = summed / ops.maximum(ops.sum(word_mask, axis=1, keepdims=True), 1.0)
        question = ops.expand_dims(self.question_projection(question), 1)  # (batch, 1, dim)
        # TILE rather than broadcast_to: the GPU delegate has no BROADCAST_TO.
        memory = ops.tile(ops.cast(self.slots, self.compute_dtype), (batch, 1, 1)) + question
        weights = None
        for read, update in zip(self.read_blocks, self.update_blocks, strict=True):
            memory, weights = read(memory, context, context_mask=context_mask, training=training)
            memory = update(memory, training=training)
        return memory, weights

    def compute_output_spec(self, visual, textual, padding_mask, training=None):
        dim = visual.shape[-1]
        context_length = None
        if visual.shape[1] is not None and textual.shape[1] is not None:
            context_length = visual.shape[1] + textual.shape[1]
        return (
            keras.KerasTensor((visual.shape[0], self.num_slots, dim), dtype=self.compute_dtype),
            keras.KerasTensor(
                (visual.shape[0], self.num_heads, self.num_slots, context_length),
                dtype=self.compute_dtype,
            ),
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_slots": self.num_slots,
                "num_layers": self.num_layers,
                "num_heads": self.num_heads,
                "intermediate_dim": self.intermediate_dim,
                "dropout": self.dropout,
            }
        )
        return config
