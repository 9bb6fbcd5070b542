"""SimMIMBackbone: images and questions to fused features."""

import inspect

import keras
import keras_hub
from keras import ops

from simmim_tf.api_export import simmim_export
from simmim_tf.layers.image_backbone_stem import ImageBackboneStem
from simmim_tf.layers.image_encoder import ImageEncoder
from simmim_tf.layers.layer_norm import LayerNorm
from simmim_tf.layers.patch_embedding import PatchEmbedding
from simmim_tf.layers.question_encoder import QuestionEncoder
from simmim_tf.layers.relational_attention import RelationalAttention
from simmim_tf.layers.semantic_memory import SemanticMemory
from simmim_tf.layers.textual_attention import TextualAttention
from simmim_tf.layers.visual_attention import VisualAttention

# `RelationalAttention`'s options (the `relational` argument) and their defaults.
RELATIONAL_OPTIONS = {
    "num_anchors": 1,
    "read_offsets": False,
    "refine_positions": False,
    "read_anchors": False,
    "offsets_in_regions": False,
    "gated_between": False,
}
# Arguments of earlier versions: each relational_* one is now a key of
# `relational` ...
LEGACY_RELATIONAL = {
    "relational_offsets": "read_offsets",
    "relational_anchors": "num_anchors",
    "relational_refine_positions": "refine_positions",
    "relational_read_anchors": "read_anchors",
    "relational_offsets_in_regions": "offsets_in_regions",
    "relational_gated_between": "gated_between",
}
# ... and these were ablation switches, now only in the experiments
# (benchmarks/ablation_backbone.py): a config holding the value the library
# always has loads, any other is refused.
ABLATION_SWITCHES = {
    "image_coordinates": True,
    "image_relative_bias": False,
    "use_visual_attention": True,
    "use_textual_attention": True,
    "use_semantic_memory": True,
    "fusion": "parallel",
}


def current_arguments(config, accepted=()):
    """Backbone arguments of an earlier version (`use_relational_attention`,
    `relational_*`, the ablation switches) → today's. `accepted`: ablation
    switches the class being built takes itself."""
    config = dict(config)
    options = {LEGACY_RELATIONAL[k]: config.pop(k) for k in list(config) if k in LEGACY_RELATIONAL}
    if "use_relational_attention" in config:
        config["relational"] = options if config.pop("use_relational_attention") else None
    elif options:
        config["relational"] = {**(config.get("relational") or {}), **options}
    for name, value in ABLATION_SWITCHES.items():
        if name in config and name not in accepted:
            if config[name] != value:
                raise ValueError(
                    f"{name}={config[name]!r} is an ablation the library no longer builds "
                    "(benchmarks/ablation_backbone.py's AblationBackbone does)"
                )
            del config[name]
    return config


def _checked(hidden_dim, num_heads, relational):
    """The relational options with their defaults filled in, once the
    arguments are checked."""
    if hidden_dim % num_heads:
        raise ValueError(
            f"`hidden_dim` ({hidden_dim}) must be divisible by `num_heads` ({num_heads})"
        )
    if relational is None:
        return None
    unknown = sorted(set(relational) - set(RELATIONAL_OPTIONS))
    if unknown:
        raise ValueError(
            f"unknown `relational` option(s) {unknown}; choose from {sorted(RELATIONAL_OPTIONS)}"
        )
    return {**RELATIONAL_OPTIONS, **relational}


def _deserialized(stem):
    """An image backbone (or `ImageBackboneStem`) from a saved config; a
    stem's name or an object as it is."""
    return keras.saving.deserialize_keras_object(stem) if isinstance(stem, dict) else stem


def _stem(stem, hidden_dim, image_size, patch_size, dtype):
    """The layer from images to region tokens, named "patch_embedding"."""
    if isinstance(stem, str):
        return PatchEmbedding(
            hidden_dim, patch_size or 8, stem, name="patch_embedding", dtype=dtype
        )
    if isinstance(stem, ImageBackboneStem):  # with its own pixel scale and offset
        if (stem.hidden_dim, stem.image_size) != (hidden_dim, image_size):
            raise ValueError(
                f"the stem gives {stem.hidden_dim}-wide regions of {stem.image_size}-pixel "
                f"images; the backbone has hidden_dim={hidden_dim}, image_size={image_size}"
            )
        layer = stem
        layer.name = "patch_embedding"  # the name the backbone's parts find it by
    else:
        layer = ImageBackboneStem(stem, hidden_dim, image_size, name="patch_embedding", dtype=dtype)
    if patch_size not in (None, layer.patch_size):
        raise ValueError(
            f"patch_size={patch_size}, but the image backbone's stride makes regions of "
            f"{layer.patch_size} pixels on {image_size}-pixel images: leave patch_size out"
        )
    return layer


def _masked_mean(x, mask):
    mask = ops.expand_dims(ops.cast(mask, x.dtype), -1)  # (batch, tokens, 1)
    return ops.sum(x * mask, axis=1) / ops.maximum(ops.sum(mask, axis=1), 1.0)


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
        patch_size: int. Pixels per region side (default 8); with an image
            backbone as the stem, its total stride (None or that value).
        stem: `"conv"` or `"patchify"` (the package's stems, see
            `PatchEmbedding`), or a keras-hub image backbone (MobileNet,
            EfficientNet, ResNet, ViT, ...) built for `image_size` or any
            size, or an `ImageBackboneStem` holding one (to set the pixel
            scale its pretrained weights expect).
        dropout: float. Dropout rate.
        image_layers: int. Transformer blocks over the regions
            (`ImageEncoder`); 0 leaves regions unrelated to each other.
        relational: dict or None. `RelationalAttention` (find the object a
            question names, then read the regions by their offset from it,
            added to the pooled features) with these options
            (`RELATIONAL_OPTIONS`, defaults for the keys left out):
            `num_anchors` 1 or 2 (a second anchor finds the second object a
            question names; `anchor_attention` is then (batch, 2, regions)),
            `refine_positions` (region positions refined by a predicted
            offset to their object's centre), `read_anchors` (the features
            under each anchor join the relational features),
            `offsets_in_regions` (offsets in region sides, the score MLP
            started at zero), `gated_between` (two anchors: their offset
            projected on directions the question picks), `read_offsets`.
            None: no relational attention.

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
        patch_size=None,
        stem="conv",
        dropout=0.0,
        image_layers=0,
        relational=None,
        dtype=None,
        **kwargs,
    ):
        relational, stem = _checked(hidden_dim, num_heads, relational), _deserialized(stem)
        kwargs.setdefault("name", "simmim_backbone")
        # === Layers ===
        layers = self._make_layers(
            vocabulary_size, image_size, max_sequence_length, hidden_dim, num_heads,
            question_layers, memory_slots, memory_layers, intermediate_dim, patch_size,
            stem, dropout, image_layers, relational, dtype,
        )  # fmt: skip
        patch_embedding = layers["patch_embedding"]

        # === Functional graph ===
        inputs = {
            "images": keras.Input((image_size, image_size, 3), dtype="uint8", name="images"),
            "token_ids": keras.Input((None,), dtype="int32", name="token_ids"),
            "padding_mask": keras.Input((None,), dtype="bool", name="padding_mask"),
        }
        outputs = self._forward(
            layers, inputs["images"], inputs["token_ids"], inputs["padding_mask"]
        )
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
        self.patch_size = patch_embedding.patch_size
        self.stem = stem
        self.dropout = dropout
        self.image_layers = image_layers
        self.relational = relational
        self.patch_embedding = patch_embedding
        self._layer_names = tuple(layers)

    def _make_layers(
        self, vocabulary_size, image_size, max_sequence_length, hidden_dim, num_heads,
        question_layers, memory_slots, memory_layers, intermediate_dim, patch_size, stem,
        dropout, image_layers, relational, dtype,
    ):  # fmt: skip
        """{name: layer} of the graph (an experiment's subclass swaps some)."""
        key_dim = hidden_dim // num_heads
        patch_embedding = _stem(stem, hidden_dim, image_size, patch_size, dtype)
        grid = patch_embedding.grid_shape(image_size, image_size)
        layers = {
            "patch_embedding": patch_embedding,
            "image_encoder": ImageEncoder(
                image_layers, num_heads, intermediate_dim, grid,
                dropout=dropout, name="image_encoder", dtype=dtype,
            ),
            "question_encoder": QuestionEncoder(
                vocabulary_size, max_sequence_length, hidden_dim, question_layers, num_heads,
                intermediate_dim, dropout, name="question_encoder", dtype=dtype,
            ),
            "visual_attention": VisualAttention(
                num_heads, key_dim, dropout, name="visual_attention", dtype=dtype
            ),
            "textual_attention": TextualAttention(
                num_heads, key_dim, dropout, name="textual_attention", dtype=dtype
            ),
            "semantic_memory": SemanticMemory(
                memory_slots, memory_layers, num_heads, intermediate_dim, dropout,
                name="semantic_memory", dtype=dtype,
            ),
        }  # fmt: skip
        if relational is not None:
            layers["relational_attention"] = RelationalAttention(
                num_heads, key_dim, grid, **relational, name="relational_attention", dtype=dtype
            )
        layers["final_norm"] = LayerNorm(1e-5, name="final_norm", dtype=dtype)
        return layers

    def _forward(self, layers, images, token_ids, padding_mask, training=None):
        regions = self._encode(layers, images, training)
        return self._fuse(layers, regions, token_ids, padding_mask, training)

    @staticmethod
    def _encode(layers, images, training=None):
        regions = layers["patch_embedding"](images, training=training)  # (batch, regions, dim)
        return layers["image_encoder"](regions, training=training)

    def _fuse(self, layers, regions, token_ids, padding_mask, training=None):
        """Everything after the image encoder: what a second question about
        the same picture has to compute (two-stage inference)."""
        words = layers["question_encoder"](
            token_ids, padding_mask, training=training
        )  # (batch, tokens, dim)
        out = {"regions": regions}
        attended_words, out["visual_attention"] = layers["visual_attention"](
            words, regions, training=training
        )  # weights (batch, heads, tokens, regions)
        attended_regions, out["textual_attention"] = layers["textual_attention"](
            regions, words, padding_mask, training=training
        )  # weights (batch, heads, regions, tokens)
        memory, out["memory_attention"] = layers["semantic_memory"](
            attended_regions, attended_words, padding_mask, training=training
        )  # weights (batch, heads, slots, regions + tokens)
        out["memory"] = memory
        pooled = ops.mean(memory, axis=1)
        if "relational_attention" in layers:
            relation, out["anchor_attention"], out["relational_attention"] = layers[
                "relational_attention"
            ](_masked_mean(words, padding_mask), regions)  # (batch, dim), (batch, regions), ...
            pooled = pooled + relation
        out["pooled"] = layers["final_norm"](pooled)  # (batch, dim)
        return out

    @classmethod
    def from_config(cls, config):
        # Configs of earlier versions (run folders, presets) load too.
        accepted = set(inspect.signature(cls.__init__).parameters)
        return cls(**current_arguments(config, accepted))

    def features(self, images, token_ids, padding_mask, training=False):
        """The backbone's outputs, computed by calling its layers directly.

        Unlike `backbone(inputs)`, images are not first converted to the
        uint8 `Input` dtype, so float32 pixels (0..255) pass straight
        through: the export feeds them this way because the TFLite GPU
        delegate has no uint8→float32 CAST.
        """
        out = self._forward(self._layers_by_name(), images, token_ids, padding_mask, training)
        out.pop("regions")
        return out

    def encode_image(self, images, training=False):
        """Image → regions (batch, regions, hidden_dim): the part of the graph
        that does not depend on the question, run once per picture."""
        return self._encode(self._layers_by_name(), images, training)

    def features_from_regions(self, regions, token_ids, padding_mask, training=False):
        """`features` from regions that `encode_image` computed."""
        return self._fuse(self._layers_by_name(), regions, token_ids, padding_mask, training)

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
            "stem": (
                self.stem
                if isinstance(self.stem, str)
                else keras.saving.serialize_keras_object(self.stem)
            ),
            "dropout": self.dropout,
            "image_layers": self.image_layers,
            "relational": self.relational,
        }
