"""The ablations' backbone: `SimMIMBackbone` with the switches the library
no longer has (each lost its ablation, docs/reasoning.md), so that their
rows can be rerun:

    image_coordinates      coordinate features before every image block
    image_relative_bias    a learned relative position bias in the image blocks
    use_visual_attention   False: the words pass without attending over the regions
    use_textual_attention  False: the regions pass without attending over the words
    use_semantic_memory    False: mean region + mean word instead of the slots
    fusion                 "sequential": the textual attention reads the words
                           after the visual attention, then an MLP per region

`vqa_with_switches` builds a `SimMIMVQA` on it where a variant sets one.
"""

import keras
import numpy as np
from keras import ops

from simmim_tf.layers.feed_forward import FeedForward
from simmim_tf.layers.image_encoder import ImageEncoder
from simmim_tf.models import SimMIMVQA
from simmim_tf.models.simmim_backbone import ABLATION_SWITCHES, SimMIMBackbone, _masked_mean
from simmim_tf.models.simmim_presets import preset_arguments

FUSIONS = ("parallel", "sequential")
# Hidden size of the relative-position-bias MLP.
BIAS_HIDDEN = 32


def pair_features(rows, cols):
    """Fixed features of each (query region, key region) pair: (R, R, 4), R = rows * cols.

    dx and dy (key minus query, in image sides), the distance and its
    square: what a relative position bias needs for "near", "far" and "on
    the left of".
    """
    y = (np.arange(rows) + 0.5) / rows
    x = (np.arange(cols) + 0.5) / cols
    yy, xx = np.meshgrid(y, x, indexing="ij")
    xx, yy = xx.reshape(-1), yy.reshape(-1)
    dx = xx[None, :] - xx[:, None]
    dy = yy[None, :] - yy[:, None]
    squared = dx**2 + dy**2
    return np.stack([dx, dy, np.sqrt(squared), squared], axis=-1).astype("float32")


@keras.saving.register_keras_serializable(package="simmim_benchmarks")
class AblationImageEncoder(ImageEncoder):
    """`ImageEncoder` with its two ablation options: `coordinates=False`
    leaves the coordinate projections out (self-attention is then
    permutation-equivariant); `relative_position_bias=True` adds to each
    block's scores a learned function (a small MLP, as Swin-v2's continuous
    position bias) of each pair's offset and distance (`pair_features`),
    one value per head."""

    def __init__(
        self, num_layers, num_heads, intermediate_dim, grid_shape, dropout=0.0,
        coordinates=True, relative_position_bias=False, **kwargs,
    ):  # fmt: skip
        super().__init__(num_layers, num_heads, intermediate_dim, grid_shape, dropout, **kwargs)
        self.coordinates = coordinates
        self.relative_position_bias = relative_position_bias

    def _coordinate_projection(self, i, dim):
        return super()._coordinate_projection(i, dim) if self.coordinates else None

    def build(self, regions_shape):
        super().build(regions_shape)
        self.bias_mlps = []
        if not self.relative_position_bias:
            return
        cells = self.grid_shape[0] * self.grid_shape[1]
        for i in range(self.num_layers):
            hidden = keras.layers.Dense(
                BIAS_HIDDEN, activation="gelu", name=f"bias_hidden_{i}", dtype=self.dtype_policy
            )
            out = keras.layers.Dense(self.num_heads, name=f"bias_{i}", dtype=self.dtype_policy)
            hidden.build((cells, cells, 4))
            out.build((cells, cells, BIAS_HIDDEN))
            self.bias_mlps.append((hidden, out))

    def _with_position(self, i, x, features):
        return super()._with_position(i, x, features) if self.coordinates else x

    def _attention_bias(self, i):
        if not self.relative_position_bias:
            return None
        hidden, out = self.bias_mlps[i]
        pairs = ops.convert_to_tensor(pair_features(*self.grid_shape), dtype=self.compute_dtype)
        return ops.transpose(out(hidden(pairs)), (2, 0, 1))  # (heads, regions, regions)

    def get_config(self):
        return {
            **super().get_config(),
            "coordinates": self.coordinates,
            "relative_position_bias": self.relative_position_bias,
        }


@keras.saving.register_keras_serializable(package="simmim_benchmarks")
class AblationBackbone(SimMIMBackbone):
    """`SimMIMBackbone` plus `ABLATION_SWITCHES` (their defaults: the library's model)."""

    def __init__(
        self,
        image_coordinates=True,
        image_relative_bias=False,
        use_visual_attention=True,
        use_textual_attention=True,
        use_semantic_memory=True,
        fusion="parallel",
        **kwargs,
    ):
        if fusion not in FUSIONS:
            raise ValueError(f"`fusion` must be one of {FUSIONS}; received fusion={fusion!r}")
        self._switches = {
            "image_coordinates": image_coordinates,
            "image_relative_bias": image_relative_bias,
            "use_visual_attention": use_visual_attention,
            "use_textual_attention": use_textual_attention,
            "use_semantic_memory": use_semantic_memory,
            "fusion": fusion,
        }
        super().__init__(**kwargs)

    def _make_layers(self, *args):
        layers = super()._make_layers(*args)
        (_, image_size, _, _, num_heads, _, _, _, intermediate_dim, _, _, dropout, image_layers,
         _, dtype) = args  # fmt: skip
        switches = self._switches
        layers["image_encoder"] = AblationImageEncoder(
            image_layers,
            num_heads,
            intermediate_dim,
            layers["patch_embedding"].grid_shape(image_size, image_size),
            dropout,
            coordinates=switches["image_coordinates"],
            relative_position_bias=switches["image_relative_bias"],
            name="image_encoder",
            dtype=dtype,
        )
        for part in ("visual_attention", "textual_attention", "semantic_memory"):
            if not switches[f"use_{part}"]:
                del layers[part]
        if switches["fusion"] == "sequential" and "textual_attention" in layers:
            layers["region_mlp"] = FeedForward(
                intermediate_dim, dropout, name="region_mlp", dtype=dtype
            )
        return layers

    def _fuse(self, layers, regions, token_ids, padding_mask, training=None):
        """The library's fusion with a part switched off absent from
        `layers`: its stream passes through unchanged and its attention
        output is left out."""
        words = layers["question_encoder"](token_ids, padding_mask, training=training)
        out = {"regions": regions}
        attended_words, attended_regions = words, regions
        if "visual_attention" in layers:
            attended_words, out["visual_attention"] = layers["visual_attention"](
                words, regions, training=training
            )
        if "textual_attention" in layers:
            # Sequential fusion: the regions read the words after these have
            # looked at the image, and `region_mlp` relates that to each region.
            sequential = "region_mlp" in layers
            attended_regions, out["textual_attention"] = layers["textual_attention"](
                regions, attended_words if sequential else words, padding_mask, training=training
            )
            if sequential:
                attended_regions = layers["region_mlp"](attended_regions, training=training)
        if "semantic_memory" in layers:
            memory, out["memory_attention"] = layers["semantic_memory"](
                attended_regions, attended_words, padding_mask, training=training
            )
            out["memory"] = memory
            pooled = ops.mean(memory, axis=1)
        else:
            pooled = ops.mean(attended_regions, axis=1) + _masked_mean(attended_words, padding_mask)
        if "relational_attention" in layers:
            relation, out["anchor_attention"], out["relational_attention"] = layers[
                "relational_attention"
            ](_masked_mean(words, padding_mask), regions)
            pooled = pooled + relation
        out["pooled"] = layers["final_norm"](pooled)
        return out

    def get_config(self):
        return {**super().get_config(), **self._switches}


def vqa_with_switches(preset, num_answers, vocabulary_size, image_size, max_sequence_length,
                      overrides=None):  # fmt: skip
    """`SimMIMVQA.from_preset(preset, ...)` with `overrides`, on an
    `AblationBackbone` where they set one of its switches."""
    overrides = dict(overrides or {})
    switches = {k: overrides.pop(k) for k in list(overrides) if k in ABLATION_SWITCHES}
    sizes = {
        "vocabulary_size": vocabulary_size,
        "image_size": image_size,
        "max_sequence_length": max_sequence_length,
    }
    if not switches:
        return SimMIMVQA.from_preset(preset, num_answers=num_answers, **sizes, **overrides)
    arguments = preset_arguments(preset, overrides)
    backbone = AblationBackbone(**switches, **sizes, **arguments)
    return SimMIMVQA(backbone, num_answers, dropout=arguments["dropout"])
