"""Question-guided attention over image regions."""

from simmim_tf.api_export import simmim_export
from simmim_tf.layers.cross_attention_block import CrossAttentionBlock


@simmim_export
class VisualAttention(CrossAttentionBlock):
    """Each question token attends over the image regions.

    softmax(Q Kᵀ / √d) with question tokens as queries and regions as keys and
    values, inside a pre-norm residual block (see `CrossAttentionBlock`).

    Args:
        num_heads: int. Number of attention heads.
        key_dim: int. Size of each head.
        dropout: float. Dropout rate.

    Call arguments:
        question: (batch, question_tokens, dim).
        regions: (batch, regions, dim).

    Returns:
        (attended_question, weights): (batch, question_tokens, dim) and
        (batch, heads, question_tokens, regions), summing to 1 over regions.

    Example:
    >>> layer = VisualAttention(num_heads=2, key_dim=8)
    >>> q, w = layer(np.zeros((1, 4, 16)), np.zeros((1, 25, 16)))
    >>> w.shape
    (1, 2, 4, 25)
    """

    def build(self, question_shape, regions_shape):
        super().build(question_shape, regions_shape)

    def call(self, question, regions, training=None):
        return super().call(question, regions, training=training)

    def compute_output_spec(self, question, regions, training=None):
        return super().compute_output_spec(question, regions)
