"""SimMIM's Keras layers (keras.ops only: TensorFlow, JAX and PyTorch backends)."""

from simmim_tf.layers.answer_head import AnswerHead
from simmim_tf.layers.caption_decoder import CaptionDecoder, CaptionDecoderBlock
from simmim_tf.layers.contrastive_head import ContrastiveHead
from simmim_tf.layers.cross_attention_block import CrossAttentionBlock
from simmim_tf.layers.embedding_projection import EmbeddingProjection
from simmim_tf.layers.feed_forward import FeedForward
from simmim_tf.layers.grounding_head import GroundingHead
from simmim_tf.layers.image_backbone_stem import ImageBackboneStem
from simmim_tf.layers.image_encoder import ImageEncoder
from simmim_tf.layers.layer_norm import LayerNorm
from simmim_tf.layers.multi_head_attention import MultiHeadAttention
from simmim_tf.layers.multi_input_dense import MultiInputDense
from simmim_tf.layers.patch_embedding import PatchEmbedding
from simmim_tf.layers.question_encoder import QuestionEncoder
from simmim_tf.layers.relational_attention import RelationalAttention
from simmim_tf.layers.semantic_memory import SemanticMemory
from simmim_tf.layers.textual_attention import TextualAttention
from simmim_tf.layers.transformer_block import TransformerBlock
from simmim_tf.layers.visual_attention import VisualAttention

__all__ = [
    "AnswerHead",
    "CaptionDecoder",
    "CaptionDecoderBlock",
    "ContrastiveHead",
    "CrossAttentionBlock",
    "EmbeddingProjection",
    "FeedForward",
    "GroundingHead",
    "ImageEncoder",
    "LayerNorm",
    "MultiHeadAttention",
    "MultiInputDense",
    "ImageBackboneStem",
    "PatchEmbedding",
    "QuestionEncoder",
    "RelationalAttention",
    "SemanticMemory",
    "TextualAttention",
    "TransformerBlock",
    "VisualAttention",
]
