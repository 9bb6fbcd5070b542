"""SimMIMBackbone: images and questions to fused features."""

import keras
import keras_hub
from keras import ops

from simmim_tf.api_export import simmim_export
from simmim_tf.layers.feed_forward import FeedForward
from simmim_tf.layers.image_encoder import ImageEncoder
from simmim_tf.layers.layer_norm import LayerNorm
from simmim_tf.layers.patch_embedding import PatchEmbedding
from simmim_tf.layers.question_encoder import QuestionEncoder
from simmim_tf.layers.relational_attention import RelationalAttention
from simmim_tf.layers.semantic_memory import SemanticMemory
from simmim_tf.layers.textual_attention import TextualAttention
from simmim_tf.layers.visual_attention import VisualAttention

FUSIONS = ("parallel", "sequential")


def _encode_image(layers, images, training=None):
    regions = layers["patch_embedding"](images, training=training)  # (batch, regions, dim)
    return layers["image_encoder"](regions, training=training)


def _forward(layers, images, token_ids, padding_mask, training=None):
    """The fusion graph, shared by the functional model and `features`."""
    regions = _encode_image(layers, images, training)
    return _forward_from_regions(layers, regions, token_ids, padding_mask, training)


def _masked_mean(x, mask):
    mask = ops.expand_dims(ops.cast(mask, x.dtype), -1)  # (batch, tokens, 1)
    return ops.sum(x * mask, axis=1) / ops.maximum(ops.sum(mask, axis=1), 1.0)


def _forward_from_regions(layers, regions, token_ids, padding_mask, training=None):
    """Everything after the image encoder: what a second question about the
    same picture has to compute (two-stage inference).

    A fusion part switched off in the constructor (an ablation) is absent
    from `layers`; its stream passes through unchanged and its attention
    output is left out.
    """
    words = layers["question_encoder"](
        token_ids, padding_mask, training=training
    )  # (batch, tokens, dim)
    out = {"regions": regions}
    attended_words, attended_regions = words, regions
    if "visual_attention" in layers:
        attended_words, out["visual_attention"] = layers["visual_attention"](
            words, regions, training=training
        )  # weights (batch, heads, tokens, regions)
    if "textual_attention" in layers:
        # Sequential fusion: the regions read the words after these have
        # looked at the image (what the question names, and where), and
        # `region_mlp` relates that to each region.
        sequential = "region_mlp" in layers
        attended_regions, out["textual_attention"] = layers["textual_attention"](
            regions, attended_words if sequential else words, padding_mask, training=training
        )  # weights (batch, heads, regions, tokens)
        if sequential:
            attended_regions = layers["region_mlp"](attended_regions, training=training)
    if "semantic_memory" in layers:
        memory, out["memory_attention"] = layers["semantic_memory"](
            attended_regions, attended_words, padding_mask, training=training
        )  # weights (batch, heads, slots, regions + tokens)
        out["memory"] = memory
        pooled = ops.mean(memory, axis=1)
    else:
        # Pooled regions and words instead of the memory's slots.
        pooled = ops.mean(attended_regions, axis=1) + _masked_mean(attended_words, padding_mask)
    if "relational_attention" in layers:
        relation, out["anchor_attention"], out["relational_attention"] = layers[
            "relational_attention"
        ](_masked_mean(words, padding_mask), regions)  # (batch, dim), (batch, regions), ...
        pooled = pooled + relation
    out["pooled"] = layers["final_norm"](pooled)  # (batch, dim)
    return out


@simmim_export
class SimMIMBackbone(keras_hub.models.Backbone):
    """The SimMIM graph from (image, question) to fused features.

    image → `PatchEmbedding` → `ImageEncoder` (regions attend to each
    other) → regions; question → `QuestionEncoder` → words;
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
        image_layers: int. Transformer blocks over the regions
            (`ImageEncoder`); 0 leaves regions unrelated to each other.
        image_coordinates: bool. Coordinate features before every image
            block (see `ImageEncoder`).
        image_relative_bias: bool. A learned relative position bias in the
            image blocks' attention (see `ImageEncoder`).
        use_visual_attention: bool. False (an ablation) lets the words
            through without attending over the regions.
        use_textual_attention: bool. False lets the regions through without
            attending over the words.
        use_semantic_memory: bool. False pools the mean region and the mean
            word instead of the memory slots.
        use_relational_attention: bool. Add `RelationalAttention` (find the
            named object, then read the regions by their offset from it) to
            the pooled features.
        relational_offsets: bool. The relational heads also read their
            regions' offset from the anchor (`RelationalAttention`'s
            `read_offsets`).
        relational_anchors: int, 1 or 2. Anchors of `RelationalAttention`:
            a second one finds the second object a question names, and the
            offset between them joins the features; `anchor_attention` is
            then (batch, 2, regions).
        relational_refine_positions: bool. `RelationalAttention`'s
            `refine_positions`: region positions refined by a predicted
            offset to their object's centre, trained only by the grounding
            loss's offset target (`SimMIMVQATraining` on data with scenes).
        relational_read_anchors: bool. `RelationalAttention`'s
            `read_anchors`: the features under each anchor (and their
            product, with two anchors) join the relational features.
        relational_offsets_in_regions: bool. `RelationalAttention`'s
            `offsets_in_regions`: its score MLP reads offsets in region
            sides (and starts at zero) rather than in image sides.
        relational_gated_between: bool. `RelationalAttention`'s
            `gated_between` (two anchors): the offset between the anchors,
            in region sides, projected on directions the question picks
            ("left of": the sign of one feature).
        fusion: str. `"parallel"`: visual and textual attention both read
            the encoders' outputs. `"sequential"`: the textual attention
            reads the words after the visual attention, then a `FeedForward`
            per region (anchor on the named object, then compare each region
            with it, as SARN does).

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
        image_layers=0,
        image_coordinates=True,
        image_relative_bias=False,
        use_visual_attention=True,
        use_textual_attention=True,
        use_semantic_memory=True,
        use_relational_attention=False,
        relational_offsets=False,
        relational_anchors=1,
        relational_refine_positions=False,
        relational_read_anchors=False,
        relational_offsets_in_regions=False,
        relational_gated_between=False,
        fusion="parallel",
        dtype=None,
        **kwargs,
    ):
        if hidden_dim % num_heads:
            raise ValueError(
                f"`hidden_dim` ({hidden_dim}) must be divisible by `num_heads` ({num_heads})"
            )
        if fusion not in FUSIONS:
            raise ValueError(f"`fusion` must be one of {FUSIONS}; received fusion={fusion!r}")
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
        image_encoder = ImageEncoder(
            image_layers,
            num_heads,
            intermediate_dim,
            patch_embedding.grid_shape(image_size, image_size),
            image_coordinates,
            image_relative_bias,
            dropout,
            name="image_encoder",
            dtype=dtype,
        )
        layers = {
            "patch_embedding": patch_embedding,
            "image_encoder": image_encoder,
            "question_encoder": question_encoder,
        }
        if use_visual_attention:
            layers["visual_attention"] = VisualAttention(
                num_heads, key_dim, dropout, name="visual_attention", dtype=dtype
            )
        if use_textual_attention:
            layers["textual_attention"] = TextualAttention(
                num_heads, key_dim, dropout, name="textual_attention", dtype=dtype
            )
            if fusion == "sequential":
                layers["region_mlp"] = FeedForward(
                    intermediate_dim, dropout, name="region_mlp", dtype=dtype
                )
        if use_semantic_memory:
            layers["semantic_memory"] = SemanticMemory(
                memory_slots,
                memory_layers,
                num_heads,
                intermediate_dim,
                dropout,
                name="semantic_memory",
                dtype=dtype,
            )
        if use_relational_attention:
            layers["relational_attention"] = RelationalAttention(
                num_heads,
                key_dim,
                patch_embedding.grid_shape(image_size, image_size),
                read_offsets=relational_offsets,
                num_anchors=relational_anchors,
                refine_positions=relational_refine_positions,
                read_anchors=relational_read_anchors,
                offsets_in_regions=relational_offsets_in_regions,
                gated_between=relational_gated_between,
                name="relational_attention",
                dtype=dtype,
            )
        layers["final_norm"] = LayerNorm(1e-5, name="final_norm", dtype=dtype)

        # === Functional graph ===
        inputs = {
            "images": keras.Input((image_size, image_size, 3), dtype="uint8", name="images"),
            "token_ids": keras.Input((None,), dtype="int32", name="token_ids"),
            "padding_mask": keras.Input((None,), dtype="bool", name="padding_mask"),
        }
        outputs = _forward(layers, inputs["images"], inputs["token_ids"], inputs["padding_mask"])
        # `regions` is for the training-time grounding head (and two-stage
        # inference), not an output of the served graph.
        outputs.pop("regions")
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
        self.image_layers = image_layers
        self.image_coordinates = image_coordinates
        self.image_relative_bias = image_relative_bias
        self.use_visual_attention = use_visual_attention
        self.use_textual_attention = use_textual_attention
        self.use_semantic_memory = use_semantic_memory
        self.use_relational_attention = use_relational_attention
        self.relational_offsets = relational_offsets
        self.relational_anchors = relational_anchors
        self.relational_refine_positions = relational_refine_positions
        self.relational_read_anchors = relational_read_anchors
        self.relational_offsets_in_regions = relational_offsets_in_regions
        self.relational_gated_between = relational_gated_between
        self.fusion = fusion
        self.patch_embedding = patch_embedding
        self._layer_names = tuple(layers)

    def features(self, images, token_ids, padding_mask, training=False):
        """The backbone's outputs, computed by calling its layers directly.

        Unlike `backbone(inputs)`, images are not first converted to the
        uint8 `Input` dtype, so float32 pixels (0..255) pass straight
        through: the export feeds them this way because the TFLite GPU
        delegate has no uint8→float32 CAST.
        """
        out = _forward(self._layers_by_name(), images, token_ids, padding_mask, training)
        out.pop("regions")
        return out

    def encode_image(self, images, training=False):
        """Image → regions (batch, regions, hidden_dim): the part of the graph
        that does not depend on the question, run once per picture."""
        return _encode_image(self._layers_by_name(), images, training)

    def features_from_regions(self, regions, token_ids, padding_mask, training=False):
        """`features` from regions that `encode_image` computed."""
        return _forward_from_regions(
            self._layers_by_name(), regions, token_ids, padding_mask, training
        )

    def _layers_by_name(self):
        return {name: self.get_layer(name) for name in self._layer_names}

    @property
    def grid_shape(self):
        """(rows, columns) of the region grid: reshape attention over regions with it."""
        return self.patch_embedding.grid_shape(self.image_size, self.image_size)

    def get_config(self):
        config = super().get_config()  # name, trainable, dtype
        return {
            **config,
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
            "image_layers": self.image_layers,
            "image_coordinates": self.image_coordinates,
            "image_relative_bias": self.image_relative_bias,
            "use_visual_attention": self.use_visual_attention,
            "use_textual_attention": self.use_textual_attention,
            "use_semantic_memory": self.use_semantic_memory,
            "use_relational_attention": self.use_relational_attention,
            "relational_offsets": self.relational_offsets,
            "relational_anchors": self.relational_anchors,
            "relational_refine_positions": self.relational_refine_positions,
            "relational_read_anchors": self.relational_read_anchors,
            "relational_offsets_in_regions": self.relational_offsets_in_regions,
            "relational_gated_between": self.relational_gated_between,
            "fusion": self.fusion,
        }
