"""ContrastiveHead: image and text embeddings to the similarity logits of a batch."""

import math

import keras
from keras import ops

from simmim_tf.api_export import simmim_export

# Starting temperature and bias. CLIP (Radford et al. 2021, section 2.5):
# temperature 0.07, its scale clipped at 100. SigLIP (Zhai et al. 2023,
# section 3.1, training from scratch): t' = log 10, b = -10, so that the
# many negatives of a batch do not dominate the first steps.
INITIAL = {"clip": (math.log(1 / 0.07), 0.0), "sigmoid": (math.log(10.0), -10.0)}
CLIP_MAX_SCALE = 100.0


@simmim_export
class ContrastiveHead(keras.layers.Layer):
    """`exp(logit_scale) · images @ textsᵀ + logit_bias`, both learned.

    Args:
        loss: str. `"clip"` (softmax cross-entropy; no bias, scale clipped
            at 100) or `"sigmoid"` (SigLIP); sets the starting values.

    Call arguments:
        image_embeddings: (images, dim), unit rows.
        text_embeddings: (texts, dim), unit rows.

    Returns:
        logits (images, texts).
    """

    def __init__(self, loss="clip", **kwargs):
        super().__init__(**kwargs)
        if loss not in INITIAL:
            raise ValueError(f"`loss` must be one of {tuple(INITIAL)}; received loss={loss!r}")
        self.loss = loss

    def build(self, image_embeddings_shape=None, text_embeddings_shape=None):
        scale, bias = INITIAL[self.loss]
        self.logit_scale = self.add_weight(
            shape=(), initializer=keras.initializers.Constant(scale), name="logit_scale"
        )
        self.logit_bias = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(bias),
            trainable=self.loss == "sigmoid",
            name="logit_bias",
        )
        self.built = True

    def call(self, image_embeddings, text_embeddings):
        scale = ops.exp(self.logit_scale)
        if self.loss == "clip":
            scale = ops.minimum(scale, CLIP_MAX_SCALE)
        similarity = ops.matmul(image_embeddings, ops.transpose(text_embeddings))
        return similarity * scale + self.logit_bias  # (images, texts)

    def get_config(self):
        config = super().get_config()
        config.update({"loss": self.loss})
        return config
