"""Image-guided attention over question words."""

from simmim_tf.api_export import simmim_export
from simmim_tf.layers.cross_attention_block import CrossAttentionBlock


@simmim_export
class TextualAttention(CrossAttentionBlock):
    """Each image region attends over the question's words, skipping padding.

    Args:
        num_heads: int. Number of attention heads.
        key_dim: int. Size of each head.
        dropout: float. Dropout rate.

    Call arguments:
        regions: (batch, regions, dim).
        question: (batch, question_tokens, dim).
        padding_mask: bool (batch, question_tokens), True for real tokens.

    Returns:
        (attended_regions, weights): (batch, regions, dim) and
        (batch, heads, regions, question_tokens), summing to 1, padding
        tokens holding less than 1e-8 of it.

    Example:
    >>> layer = TextualAttention(num_heads=2, key_dim=8)
    >>> mask = np.array([[True, True, False]])
    >>> v, w = layer(np.zeros((1, 25, 16)), np.zeros((1, 3, 16)), mask)
    >>> w.shape
    (1, 2, 25, 3)
    """

    def build(self, regions_shape, question_shape, padding_mask_shape=None):
        super().build(regions_shape, question_shape)

    def call(self, regions, question, padding_mask, training=None):
        return super().call(regions, question, context_mask=padding_mask, training=training)

    def compute_output_spec(self, regions, question, padding_mask, training=None):
        return super().compute_output_spec(regions, question)
