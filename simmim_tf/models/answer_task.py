"""What the tasks that classify answers (`SimMIMVQA`, `SimMIMVideoQA`)
share: their `from_preset` of a named architecture and `compile`'s
defaults."""

import keras

from simmim_tf.models.simmim_backbone import SimMIMBackbone
from simmim_tf.models.simmim_presets import preset_arguments
from simmim_tf.models.smoothed_answer_loss import SmoothedAnswerLoss
from simmim_tf.models.summed_then_clipped import SimMIMAdamW


class AnswerTask:
    """A mixin for a `SimMIMTask` whose constructor takes `(backbone,
    num_answers, preprocessor=, dropout=, dtype=)`: `from_preset` of a named
    architecture sized by the preprocessor (or by explicit sizes), and
    `compile` with AdamW, sparse cross-entropy on logits and accuracy by
    default."""

    @classmethod
    def _from_architecture(
        cls, preset, preprocessor, dtype, num_answers=None, vocabulary_size=None,
        image_size=None, max_sequence_length=32, **overrides,
    ):  # fmt: skip
        """`from_preset` of a named architecture: `num_answers`,
        `vocabulary_size`, `image_size` and `max_sequence_length` size it
        when no `preprocessor` does; `overrides` replace the preset's
        backbone arguments."""
        if preprocessor is not None:
            num_answers = len(preprocessor.answers)
            vocabulary_size = preprocessor.tokenizer.vocabulary_size()
            image_size = preprocessor.image_size
            max_sequence_length = preprocessor.sequence_length
        missing = [
            name
            for name, value in [
                ("num_answers", num_answers),
                ("vocabulary_size", vocabulary_size),
                ("image_size", image_size),
            ]
            if value is None
        ]
        if missing:
            raise ValueError(
                f"{cls.__name__}.from_preset({preset!r}) needs a preprocessor or "
                f"{', '.join(missing)}"
            )
        config = preset_arguments(preset, overrides)
        backbone = SimMIMBackbone(
            vocabulary_size=vocabulary_size,
            image_size=image_size,
            max_sequence_length=max_sequence_length,
            dtype=dtype,
            **config,
        )
        return cls(
            backbone, num_answers, preprocessor=preprocessor, dropout=config["dropout"], dtype=dtype
        )

    @staticmethod
    def _check_answers(preprocessor, num_answers):
        if preprocessor is not None and len(preprocessor.answers) != num_answers:
            raise ValueError(
                f"the preprocessor has {len(preprocessor.answers)} answers; "
                f"num_answers={num_answers}"
            )

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
    def default_optimizer(learning_rate=1e-3, beta_2=0.95):
        """AdamW (weight decay 0.01), each weight's gradient clipped to norm 1.

        `beta_2` 0.95 (Keras's default is 0.999) keeps Adam's second moment
        over ~20 steps, so a sudden rise of the gradients does not meet a
        stale, small estimate: on CLEVR-2D it was ahead in every pair of
        60-minute runs measured (docs/reasoning.md).
        """
        return SimMIMAdamW(learning_rate, weight_decay=0.01, beta_2=beta_2, clipnorm=1.0)
