"""SimMIMBackbone: images and questions to fused features."""

import keras
from keras import ops

from simmim_tf.api_export import simmim_export
from simmim_tf.layers.layer_norm import LayerNorm
from simmim_tf.layers.patch_embedding import PatchEmbedding
from simmim_tf.layers.question_encoder import QuestionEncoder
from simmim_tf.layers.semantic_memory import SemanticMemory
from simmim_tf.layers.textual_attention import TextualAttention
from simmim_tf.layers.visual_attention import VisualAttention

_LAYER_NAMES = (
    "patch_embedding",
    "question_encoder",
    "visual_attention",
    "textual_attention",
    "semantic_memory",
    "final_norm",
)


def _forward(layers, images, token_ids, padding_mask, training=None):
    """The fusion graph, shared by the functional model and `features`."""
    regions = layers["patch_embedding"](images, training=training)  # (batch, regions, dim)
    return _forward_from_regions(layers, regions, token_ids, padding_mask, training)


def _forward_from_regions(layers, regions, token_ids, padding_mask, training=None):
    """Everything after the image encoder: what a second question about the
    same picture has to compute (two-stage inference)."""
    words = layers["question_encoder"](
        token_ids, padding_mask, training=training
    )  # (batch, tokens, dim)
    attended_words, visual_weights = layers["visual_attention"](words, regions, training=training)
    attended_regions, textual_weights = layers["textual_attention"](
        regions, words, padding_mask, training=training
    )
    memory, memory_weights = layers["semantic_memory"](
        attended_regions, attended_words, padding_mask, training=training
    )
    pooled = layers["final_norm"](ops.mean(memory, axis=1))  # (batch, dim)
    return {
        "memory": memory,
        "pooled": pooled,
        "visual_attention": visual_weights,  # (batch, heads, tokens, regions)
        "textual_attention": textual_weights,  # (batch, heads, regions, tokens)
        "memory_attention": memory_weights,  # (batch, heads, slots, regions + tokens)
    }


@simmim_export
class SimMIMBackbone(keras.Model):
    """The SimMIM graph from (image, question) to fused features.

    image → `PatchEmbedding` → regions; question → `QuestionEncoder` → words;
    `VisualAttention` (words attend over regions), `TextualAttention`
    (regions attend over words), then `SemanticMemory` slots read both and
    update themselves layer after layer. `pooled` is the layer-normalised
    mean of the final slots.

    Args:
        vocabulary_size: int. Question vocabulary size, padding id 0 included.
        image_size: int. Side of the square input images, in pixels.
        max_sequence_length: int. Longest question, in tokens.
        hidden_dim: int. Feature size everywhere.
        num_heads: int. Attention heads in every attention.
        question_layers: int. Transformer blocks of the question encoder.
        memory_slots: int. Number of semantic-memory slots.
        memory_layers: int. Read-and-update layers of the semantic memory.
        intermediate_dim: int. MLP hidden size.
        patch_size: int. Pixels per region side.
        stem: str. `"conv"` or `"patchify"` (see `PatchEmbedding`).
        dropout: float. Dropout rate.

    Inputs: a dict with `images` uint8 (batch, image_size, image_size, 3),
    `token_ids` int32 (batch, tokens) and `padding_mask` bool (batch, tokens).

    Outputs: a dict with `memory` (batch, slots, dim), `pooled`
    (batch, dim), `visual_attention` (batch, heads, tokens, regions),
    `textual_attention` (batch, heads, regions, tokens) and
    `memory_attention` (batch, heads, slots, regions + tokens).

    Example:
    >>> backbone = SimMIMBackbone(vocabulary_size=50, image_size=32,
    ...     max_sequence_length=8, hidden_dim=32, num_heads=2,
    ...     question_layers=1, memory_slots=4, memory_layers=1,
    ...     intermediate_dim=64)
    >>> out = backbone({"images": np.zeros((1, 32, 32, 3), "uint8"),
    ...     "token_ids": np.ones((1, 8), "int32"),
    ...     "padding_mask": np.ones((1, 8), bool)})
    >>> out["pooled"].shape
    (1, 32)
    """

    def __init__(
        self,
        vocabulary_size,
        image_size,
        max_sequence_length,
        hidden_dim,
        num_heads,
        question_layers,
        memory_slots,
        memory_layers,
        intermediate_dim,
        patch_size=8,
        stem="conv",
        dropout=0.0,
        dtype=None,
        **kwargs,
    ):
        if hidden_dim % num_heads:
            raise ValueError(
                f"`hidden_dim` ({hidden_dim}) must be divisible by `num_heads` ({num_heads})"
            )
        key_dim = hidden_dim // num_heads
        kwargs.setdefault("name", "simmim_backbone")
        # === Layers ===
        patch_embedding = PatchEmbedding(
            hidden_dim, patch_size, stem, name="patch_embedding", dtype=dtype
        )
        question_encoder = QuestionEncoder(
            vocabulary_size,
            max_sequence_length,
            hidden_dim,
            question_layers,
            num_heads,
            intermediate_dim,
            dropout,
            name="question_encoder",
            dtype=dtype,
        )
        visual_attention = VisualAttention(
            num_heads, key_dim, dropout, name="visual_attention", dtype=dtype
        )
        textual_attention = TextualAttention(
            num_heads, key_dim, dropout, name="textual_attention", dtype=dtype
        )
        memory_layer = SemanticMemory(
            memory_slots,
            memory_layers,
            num_heads,
            intermediate_dim,
            dropout,
            name="semantic_memory",
            dtype=dtype,
        )
        final_norm = LayerNorm(1e-5, name="final_norm", dtype=dtype)

        # === Functional graph ===
        inputs = {
            "images": keras.Input((image_size, image_size, 3), dtype="uint8", name="images"),
            "token_ids": keras.Input((None,), dtype="int32", name="token_ids"),
            "padding_mask": keras.Input((None,), dtype="bool", name="padding_mask"),
        }
        layers = dict(
            zip(
                _LAYER_NAMES,
                (
                    patch_embedding,
                    question_encoder,
                    visual_attention,
                    textual_attention,
                    memory_layer,
                    final_norm,
                ),
                strict=True,
            )
        )
        outputs = _forward(layers, inputs["images"], inputs["token_ids"], inputs["padding_mask"])
        super().__init__(inputs=inputs, outputs=outputs, dtype=dtype, **kwargs)

        # === Config ===
        self.vocabulary_size = vocabulary_size
        self.image_size = image_size
        self.max_sequence_length = max_sequence_length
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.question_layers = question_layers
        self.memory_slots = memory_slots
        self.memory_layers = memory_layers
        self.intermediate_dim = intermediate_dim
        self.patch_size = patch_size
        self.stem = stem
        self.dropout = dropout
        self.patch_embedding = patch_embedding

    def features(self, images, token_ids, padding_mask, training=False):
        """The backbone's outputs, computed by calling its layers directly.

        Unlike `backbone(inputs)`, images are not first converted to the
        uint8 `Input` dtype, so float32 pixels (0..255) pass straight
        through: the export feeds them this way because the TFLite GPU
        delegate has no uint8→float32 CAST.
        """
        layers = {name: self.get_layer(name) for name in _LAYER_NAMES}
        return _forward(layers, images, token_ids, padding_mask, training)

    def encode_image(self, images, training=False):
        """Image → regions (batch, regions, hidden_dim): the part of the graph
        that does not depend on the question, run once per picture."""
        return self.get_layer("patch_embedding")(images, training=training)

    def features_from_regions(self, regions, token_ids, padding_mask, training=False):
        """`features` from regions that `encode_image` computed."""
        layers = {name: self.get_layer(name) for name in _LAYER_NAMES}
        return _forward_from_regions(layers, regions, token_ids, padding_mask, training)

    @property
    def grid_shape(self):
        """(rows, columns) of the region grid: reshape attention over regions with it."""
        return self.patch_embedding.grid_shape(self.image_size, self.image_size)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
            "vocabulary_size": self.vocabulary_size,
            "image_size": self.image_size,
            "max_sequence_length": self.max_sequence_length,
            "hidden_dim": self.hidden_dim,
            "num_heads": self.num_heads,
            "question_layers": self.question_layers,
            "memory_slots": self.memory_slots,
            "memory_layers": self.memory_layers,
            "intermediate_dim": self.intermediate_dim,
            "patch_size": self.patch_size,
            "stem": self.stem,
            "dropout": self.dropout,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        return cls(**config)
