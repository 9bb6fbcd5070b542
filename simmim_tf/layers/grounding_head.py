"""Per-region object attributes and centre offset: the head of the grounding loss."""

import keras

from simmim_tf.api_export import simmim_export
from simmim_tf.layers.layer_norm import LayerNorm


@simmim_export
class GroundingHead(keras.layers.Layer):
    """Encoded regions → logits of each object attribute (colour, shape,
    ...) and the offset of the object's centre from the region's.

    A LayerNorm and one Dense layer, so that the attributes must be linearly
    readable from each region token: the image encoder, not the head, has to
    know which object lies where. Used only in training
    (`SimMIMVQATraining`); it is not part of the exported model.

    Args:
        attribute_sizes: list of int. Classes per attribute, "no object"
            (id 0) included.

    Call arguments:
        regions: (batch, regions, dim).

    Returns:
        (batch, regions, sum(attribute_sizes) + 2), float32: the
        attributes' logits one after another, then (dx, dy).

    Example:
    >>> head = GroundingHead(attribute_sizes=[7, 3])
    >>> head(np.zeros((2, 9, 16))).shape
    (2, 9, 12)
    """

    def __init__(self, attribute_sizes, **kwargs):
        super().__init__(**kwargs)
        self.attribute_sizes = [int(n) for n in attribute_sizes]

    def build(self, regions_shape):
        self.norm = LayerNorm(1e-5, name="norm", dtype=self.dtype_policy)
        self.logits = keras.layers.Dense(
            sum(self.attribute_sizes) + 2, name="logits", dtype="float32"
        )
        self.norm.build(regions_shape)
        self.logits.build(regions_shape)

    def call(self, regions):
        return self.logits(self.norm(regions))

    def compute_output_shape(self, regions_shape):
        return tuple(regions_shape[:-1]) + (sum(self.attribute_sizes) + 2,)

    def get_config(self):
        return {**super().get_config(), "attribute_sizes": self.attribute_sizes}
