"""SimMIMVQA: the visual-question-answering task on a SimMIMBackbone."""

import keras

from simmim_tf.api_export import simmim_export
from simmim_tf.layers.answer_head import AnswerHead
from simmim_tf.models.simmim_backbone import SimMIMBackbone
from simmim_tf.models.simmim_presets import SIMMIM_PRESETS
from simmim_tf.models.smoothed_answer_loss import SmoothedAnswerLoss


@simmim_export
class SimMIMVQA(keras.Model):
    """Answer classification over a fixed answer vocabulary.

    Args:
        backbone: `SimMIMBackbone`.
        num_answers: int. Size of the answer vocabulary.
        head_dim: int or None. Hidden size of the answer head; None uses the
            backbone's `hidden_dim`.
        dropout: float. Dropout in the answer head.

    Inputs: the backbone's dict. Output: logits (batch, num_answers).

    Example:
    >>> model = SimMIMVQA.from_preset("tiny", num_answers=10,
    ...     vocabulary_size=40, image_size=75)
    >>> model.compile()
    """

    def __init__(self, backbone, num_answers, head_dim=None, dropout=0.0, dtype=None, **kwargs):
        head = AnswerHead(
            num_answers, head_dim or backbone.hidden_dim, dropout, name="answer_head", dtype=dtype
        )
        kwargs.setdefault("name", "simmim_vqa")
        inputs = backbone.input
        logits = head(backbone(inputs)["pooled"])
        super().__init__(inputs=inputs, outputs=logits, dtype=dtype, **kwargs)
        self.backbone = backbone
        self.answer_head = head
        self.num_answers = num_answers
        self.head_dim = head_dim
        self.dropout = dropout

    @classmethod
    def from_preset(
        cls,
        preset,
        num_answers,
        vocabulary_size,
        image_size,
        max_sequence_length=32,
        dtype=None,
        **overrides,
    ):
        """Builds an untrained model from a named configuration.

        Args:
            preset: str. One of `SIMMIM_PRESETS` ("tiny", "small", "base").
            num_answers: int. Size of the answer vocabulary.
            vocabulary_size: int. Question vocabulary size.
            image_size: int. Side of the square input images.
            max_sequence_length: int. Longest question, in tokens.
            dtype: a dtype policy name, e.g. "mixed_bfloat16".
            **overrides: backbone arguments that replace the preset's.
        """
        if preset not in SIMMIM_PRESETS:
            raise ValueError(f"Unknown preset {preset!r}; available: {', '.join(SIMMIM_PRESETS)}")
        config = {**SIMMIM_PRESETS[preset], **overrides}
        backbone = SimMIMBackbone(
            vocabulary_size=vocabulary_size,
            image_size=image_size,
            max_sequence_length=max_sequence_length,
            dtype=dtype,
            **config,
        )
        return cls(backbone, num_answers, dropout=config["dropout"], dtype=dtype)

    def compile(
        self,
        optimizer="auto",
        loss="auto",
        metrics="auto",
        learning_rate=1e-3,
        label_smoothing=0.0,
        **kwargs,
    ):
        """Compiles with AdamW, sparse cross-entropy on logits and accuracy by default.

        `label_smoothing` > 0 uses `SmoothedAnswerLoss` instead of the plain
        cross-entropy.
        """
        if optimizer == "auto":
            optimizer = self.default_optimizer(learning_rate)
        if loss == "auto" and label_smoothing:
            loss = SmoothedAnswerLoss(label_smoothing)
        elif loss == "auto":
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        if metrics == "auto":
            metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    @staticmethod
    def default_optimizer(learning_rate=1e-3):
        """AdamW (weight decay 0.01) with gradients clipped to norm 1."""
        return keras.optimizers.AdamW(learning_rate, weight_decay=0.01, clipnorm=1.0)

    def compile_from_config(self, config):
        # Keras skips compile on load for models that override `compile`;
        # ours only fills defaults, so the saved arguments can be replayed.
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def answer_with_attention(self, inputs, training=False):
        """Logits and the backbone's attention maps, for explanation and export.

        `inputs["images"]` may be uint8 or float32 pixels in 0..255 (see
        `SimMIMBackbone.features`).
        """
        features = self.backbone.features(
            inputs["images"], inputs["token_ids"], inputs["padding_mask"], training=training
        )
        maps = ("visual_attention", "textual_attention", "memory_attention")
        return {
            "logits": self.answer_head(features["pooled"], training=training),
            # All three unless an ablation switched a fusion part off.
            **{name: features[name] for name in maps if name in features},
        }

    def answer_from_regions(self, regions, token_ids, padding_mask, training=False):
        """`answer_with_attention` from cached regions (`backbone.encode_image`)."""
        features = self.backbone.features_from_regions(
            regions, token_ids, padding_mask, training=training
        )
        out = {"logits": self.answer_head(features["pooled"], training=training)}
        if "visual_attention" in features:
            out["visual_attention"] = features["visual_attention"]
        return out

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "num_answers": self.num_answers,
            "head_dim": self.head_dim,
            "dropout": self.dropout,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        return cls(**config)
