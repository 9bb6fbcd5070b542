"""AnchorLoss: the anchor of `RelationalAttention` should land on the object
the question names."""

import keras
from keras import ops

from simmim_tf.api_export import simmim_export


@simmim_export
class AnchorLoss(keras.losses.Loss):
    """−log of the anchor attention that falls on the named object's regions.

    y_true: (batch, regions), 1 on the regions the named object covers
    (`simmim_tf.data.anchor_targets`); a row of zeros (no named object)
    adds nothing. y_pred: (batch, regions), the anchor attention (sums to 1).
    For two anchors both are (batch, 2, regions), and the two anchors'
    losses add up.
    Any share of the object's regions satisfies it: the anchor's position is
    the attention-weighted mean of region centres, which lands on the
    object whichever of its regions carry the weight.
    """

    def call(self, y_true, y_pred):
        mask = ops.cast(y_true, "float32")
        on_object = ops.sum(ops.cast(y_pred, "float32") * mask, axis=-1)  # (batch,)
        supervised = ops.cast(ops.sum(mask, axis=-1) > 0, "float32")
        loss = -ops.log(on_object + 1e-6) * supervised
        # Two anchors, (batch, 2): each anchor's loss counts in full, as one
        # anchor's does, rather than their mean.
        return ops.sum(loss, axis=-1) if len(loss.shape) == 2 else loss
