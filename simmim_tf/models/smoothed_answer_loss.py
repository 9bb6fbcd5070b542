"""Cross-entropy over answer ids with label smoothing.

Keras 3's `SparseCategoricalCrossentropy` takes no `label_smoothing`, and
`CategoricalCrossentropy` wants one-hot labels; this takes the integer
answer ids the pipelines emit and smooths as `CategoricalCrossentropy` does
(Szegedy et al. 2016): the target is (1 - s) on the answer and s / K spread
over all K answers.
"""

import keras
from keras import ops

from simmim_tf.api_export import simmim_export


@simmim_export
class SmoothedAnswerLoss(keras.losses.Loss):
    """Sparse categorical cross-entropy on logits with label smoothing.

    Args:
        label_smoothing: float in [0, 1). 0 is plain cross-entropy.

    Example:
    >>> loss = SmoothedAnswerLoss(label_smoothing=0.1)
    >>> float(loss([0], [[2.0, 0.0, 0.0]])) > 0
    True
    """

    def __init__(self, label_smoothing=0.1, name="smoothed_answer_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        if not 0 <= label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1); got {label_smoothing}")
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        num_answers = ops.shape(y_pred)[-1]
        labels = ops.reshape(ops.cast(y_true, "int32"), (-1,))
        one_hot = ops.one_hot(labels, num_answers, dtype=y_pred.dtype)  # (batch, answers)
        return keras.losses.categorical_crossentropy(
            one_hot, y_pred, from_logits=True, label_smoothing=self.label_smoothing
        )

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}
