"""Layer normalisation written so that every op passes the TFLite GPU delegate."""

import keras
from keras import ops

from simmim_tf.api_export import simmim_export
from simmim_tf.layers.quantization_points import quantization_point


@simmim_export
class LayerNorm(keras.layers.Layer):
    """`(x - mean) * rsqrt(var + eps) * gamma + beta` over the last axis.

    `keras.layers.LayerNormalization` first multiplies rsqrt(var) of shape
    (batch, tokens, 1) by gamma of shape (dim,); in TFLite that is a MUL of
    (1, tokens, 1) × (1, 1, dim), an outer product the GPU delegate refuses.
    Here the normalised tensor is formed first, so each MUL has one operand
    covering the other.

    Args:
        epsilon: float. Added to the variance.
    """

    def __init__(self, epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def build(self, input_shape):
        dim = input_shape[-1]
        self.gamma = self.add_weight(shape=(dim,), initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=(dim,), initializer="zeros", name="beta")

    def call(self, x):
        # Statistics in float32 for mixed precision.
        # Each intermediate is a tensor the int8 model quantizes on its own
        # scale: the quantization points name them (identity outside
        # quantization-aware work).
        x32 = ops.cast(x, "float32")
        mean = quantization_point(self, "mean", ops.mean(x32, axis=-1, keepdims=True))  # (..., 1)
        centred = quantization_point(self, "centred", x32 - mean)
        # A product, not ops.square: TFLite has no int8 SQUARE kernel (and no
        # int16 SQUARED_DIFFERENCE), every integer MUL kernel exists.
        squared = quantization_point(self, "squared", centred * centred)
        variance = quantization_point(self, "variance", ops.mean(squared, axis=-1, keepdims=True))
        inv_std = quantization_point(self, "inv_std", ops.rsqrt(variance + self.epsilon))
        normalised = quantization_point(self, "normalised", centred * inv_std)  # (..., dim)
        scaled = quantization_point(self, "scaled", normalised * ops.cast(self.gamma, "float32"))
        out = scaled + ops.cast(self.beta, "float32")
        return ops.cast(out, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"epsilon": self.epsilon})
        return config
