"""`Dense` over several inputs, each kept its own tensor: what an int8
model needs where the inputs' ranges differ."""

import keras
from keras import ops

from simmim_tf.api_export import simmim_export


@simmim_export
class MultiInputDense(keras.layers.Dense):
    """`Dense` on the concatenation of its inputs, computed without the
    concatenation: `x_1 @ K_1 + ... + x_n @ K_n + b`, where `K_i` are the
    kernel's rows for input `i`.

    The weights and the float function are those of `Dense` on the
    concatenated inputs, so a kernel saved by one loads into the other. The
    difference is in int8: TFLite gives a tensor one scale, and a
    CONCATENATION's inputs share it, so a small feature concatenated with a
    large one is rounded to the large one's step. Here each input is its own
    int8 tensor (docs/export.md, "int8 and the offset features").

    Args:
        units, activation, ...: as `keras.layers.Dense`.

    Call arguments:
        inputs: a list of tensors `(..., d_i)` with the same leading shape.

    Example:
    >>> layer = MultiInputDense(3)
    >>> layer([np.ones((2, 4)), np.ones((2, 1))]).shape
    (2, 3)
    """

    @property
    def input_spec(self):
        return None  # Dense's (one input) would refuse the list

    @input_spec.setter
    def input_spec(self, value):
        pass  # Dense sets it in __init__ and build

    def build(self, input_shape):
        dims = [shape[-1] for shape in input_shape]
        super().build(tuple(input_shape[0][:-1]) + (sum(dims),))
        self._input_dims = dims

    def call(self, inputs):
        return self.activation(self.project(inputs, self.kernel))

    def project(self, inputs, kernel, point=None):
        """The pre-activation with `kernel` in place of the layer's own (a
        fake-quantized one, `simmim_tf.export.quantization_aware`), which
        also passes `point(i, tensor)`, applied to each partial product."""
        total = None
        for i, (x, part) in enumerate(zip(inputs, self.kernel_parts(kernel), strict=True)):
            y = ops.matmul(x, part)
            if point is not None:
                y = point(i, y)
            total = y if total is None else total + y
        # The bias after the sum, as Dense on the concatenation: folded into
        # the first product instead, the int8 model lost 0.4 points of
        # agreement on the demo model (docs/export.md).
        return total + self.bias if self.use_bias else total

    def kernel_parts(self, kernel):
        """`kernel`'s rows for each input, in order."""
        parts, start = [], 0
        for dim in self._input_dims:
            parts.append(kernel[start : start + dim])
            start += dim
        return parts

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0][:-1]) + (self.units,)
