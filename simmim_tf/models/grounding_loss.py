"""The grounding loss: every region's object attributes and where, within
the region, the object's centre lies."""

import keras
from keras import ops

from simmim_tf.api_export import simmim_export


@simmim_export
class GroundingLoss(keras.losses.Loss):
    """Cross-entropy of the attributes plus the error of the centre offset.

    y_true: float (batch, regions, attributes + 2) from
    `simmim_tf.data.region_targets`: attribute ids (0 for "no object"), then
    the object centre's offset from the region centre. y_pred: (batch,
    regions, sum(attribute_sizes) + 2) from `GroundingHead`: the attributes'
    logits, then the predicted offset.

    The cross-entropy is averaged over all regions and attributes, empty
    regions included (telling background from object is half of
    grounding); the offset's squared error over the regions that hold an
    object, weighted by `offset_weight`.

    Args:
        attribute_sizes: list of int. Classes per attribute.
        offset_weight: float. Weight of the offset term.

    Example:
    >>> loss = GroundingLoss([3, 2])
    >>> float(loss(np.zeros((1, 4, 4)), np.zeros((1, 4, 7)))) > 0
    True
    """

    def __init__(self, attribute_sizes, offset_weight=1.0, name="grounding_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.attribute_sizes = [int(n) for n in attribute_sizes]
        self.offset_weight = offset_weight

    def call(self, y_true, y_pred):
        num = len(self.attribute_sizes)
        ids = ops.cast(y_true[..., :num], "int32")
        losses, start = [], 0
        for k, size in enumerate(self.attribute_sizes):
            logits = y_pred[..., start : start + size]  # (batch, regions, size)
            losses.append(
                keras.losses.sparse_categorical_crossentropy(ids[..., k], logits, from_logits=True)
            )  # (batch, regions)
            start += size
        # (batch,): mean over regions and attributes
        cross_entropy = ops.mean(ops.stack(losses, axis=-1), axis=(1, 2))
        occupied = ops.cast(ids[..., 0] > 0, y_pred.dtype)  # (batch, regions)
        error = ops.sum(ops.square(y_pred[..., start:] - y_true[..., num:]), axis=-1)
        offset = ops.sum(error * occupied, axis=1) / ops.maximum(ops.sum(occupied, axis=1), 1.0)
        return cross_entropy + self.offset_weight * offset

    def get_config(self):
        return {
            **super().get_config(),
            "attribute_sizes": self.attribute_sizes,
            "offset_weight": self.offset_weight,
        }
