"""SimMIMVQATraining: trains a SimMIMVQA on image-grouped batches, with the
grounding loss where scenes exist."""

import keras
from keras import ops

from simmim_tf.layers.grounding_head import GroundingHead
from simmim_tf.models.anchor_loss import AnchorLoss
from simmim_tf.models.grounding_loss import GroundingLoss
from simmim_tf.models.smoothed_answer_loss import SmoothedAnswerLoss
from simmim_tf.models.unused_backbone_layers import (
    UnusedBackboneLayers,
    refining_relational_attention,
)


class SimMIMVQATraining(UnusedBackboneLayers, keras.Model):
    """A training-time wrapper around a `SimMIMVQA`: what is served and
    exported stays `vqa`, whose inputs and outputs are unchanged.

    Two things the plain model cannot do in `fit`:
    - Image-grouped batches: a batch holds K images and Q questions about
      them, `image_index` (Q,) naming each question's image. Each image goes
      through the image encoder once however many of its questions the
      batch has (the two-stage split of `SimMIMBackbone.encode_image`), so
      the image encoder, the larger cost, is paid K rather than Q times.
    - The grounding loss: a `GroundingHead` predicts each region's object
      attributes from the encoded regions (`simmim_tf.data.region_targets`),
      weighted by `grounding_weight` against the answer loss.
      With relational `refine_positions`, the centre-offset part of that
      loss alone trains the `RelationalAttention`'s own offset prediction
      (without it, the answers do).
    - The anchor loss (`AnchorLoss`, weighted by `anchor_weight`): the
      anchor of the backbone's `RelationalAttention` should land on the
      object the question names (`simmim_tf.data.anchor_targets`).

    Args:
        vqa: `SimMIMVQA`. The model to train (its variables are shared).
        attribute_sizes: list of int or None. Classes per object attribute;
            None: no grounding head.
        grounding_weight: float. Weight of the grounding loss.
        offset_weight: float. Weight of the centre-offset term inside it
            (`GroundingLoss`).
        anchor_weight: float. Weight of the anchor loss; > 0 needs a
            backbone with relational attention.

    Inputs: {"images" uint8 (K, S, S, 3), "image_index" int32 (Q,),
    "token_ids" int32 (Q, tokens), "padding_mask" (Q, tokens)}; without
    "image_index", one image per question (K = Q): the form every input
    pipeline gives and any tf.distribute strategy can split.
    Outputs: {"answers": logits (Q, answers)} and, with a head,
    "grounding" (K, regions, sum(attribute_sizes) + 2).
    Targets: {"answers": (Q,)} and, with a head, "grounding" (K, regions,
    attributes + 2); with the anchor loss, "anchor" (Q, regions).
    """

    def __init__(
        self,
        vqa,
        attribute_sizes=None,
        grounding_weight=1.0,
        offset_weight=1.0,
        anchor_weight=0.0,
        **kwargs,
    ):
        if anchor_weight and not vqa.backbone.relational:
            raise ValueError("anchor_weight > 0 needs a backbone with relational attention")
        super().__init__(**kwargs)
        self.anchor_weight = anchor_weight
        self.vqa = vqa
        self.attribute_sizes = list(attribute_sizes) if attribute_sizes else None
        self.grounding_weight = grounding_weight
        self.offset_weight = offset_weight
        self.grounding_head = (
            GroundingHead(self.attribute_sizes, name="grounding_head") if attribute_sizes else None
        )
        relational = refining_relational_attention(vqa.backbone)
        if relational is not None and attribute_sizes and grounding_weight and offset_weight:
            # With a centre-offset target, it alone trains the refined
            # positions: the recipe every with-scenes figure was measured
            # with (benchmarks/results/without_scenes says why the answers
            # train them where there is no target).
            relational.positions_from_target_only = True

    def call(self, inputs, training=False):
        regions = self.vqa.backbone.encode_image(inputs["images"], training=training)  # (K, R, D)
        per_question = regions  # one image per question (any pipeline, any strategy)
        if "image_index" in inputs:  # image-grouped batches
            per_question = ops.take(regions, inputs["image_index"], axis=0)  # (Q, R, D)
        mask = ops.cast(inputs["padding_mask"], "bool")
        out = self.vqa.answer_from_regions(
            per_question, inputs["token_ids"], mask, training=training
        )
        outputs = {"answers": out["logits"]}
        if self.grounding_head is not None:
            grounding = self.grounding_head(regions)  # (K, R, attributes + 2)
            relational = refining_relational_attention(self.vqa.backbone)
            if relational is not None:
                # The relational attention's own offset prediction takes the
                # grounding head's place: the loss trains what positions use.
                grounding = ops.concatenate(
                    [grounding[..., :-2], relational.region_offsets(regions)], axis=-1
                )
            outputs["grounding"] = grounding
        if self.anchor_weight:
            outputs["anchor"] = out["anchor_attention"]  # (Q, regions)
        return outputs

    def compile(self, optimizer, label_smoothing=0.0, **kwargs):
        """Answer cross-entropy (label-smoothed if asked) plus the weighted
        grounding loss; accuracy of the answers."""
        losses = {
            "answers": SmoothedAnswerLoss(label_smoothing)
            if label_smoothing
            else keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        }
        weights = {"answers": 1.0}
        metrics = {"answers": [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]}
        if self.grounding_head is not None:
            losses["grounding"] = GroundingLoss(self.attribute_sizes, self.offset_weight)
            weights["grounding"] = self.grounding_weight
        if self.anchor_weight:
            losses["anchor"] = AnchorLoss()
            weights["anchor"] = self.anchor_weight
        super().compile(
            optimizer=optimizer, loss=losses, loss_weights=weights, metrics=metrics, **kwargs
        )
