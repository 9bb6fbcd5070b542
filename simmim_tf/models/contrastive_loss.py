"""The contrastive losses of `SimMIMRetriever`, with every matching pair of
a batch a positive (not only the diagonal)."""

from keras import ops
from keras_hub.src.models.siglip.siglip_loss import SigLIPLoss  # not exported in keras-hub 0.32

LOSSES = ("clip", "sigmoid")


def pair_positives(token_ids, image_ids=None):
    """(batch, batch) float: 1 where caption j matches image i.

    The diagonal, every pair whose captions have the same token ids (CLEVR-2D's
    short captions repeat across images), and, given `image_ids` (batch,),
    every pair showing the same image (one image, several captions).
    """
    same_text = ops.all(
        ops.expand_dims(token_ids, 1) == ops.expand_dims(token_ids, 0), axis=-1
    )  # (batch, batch)
    positives = ops.logical_or(same_text, ops.eye(ops.shape(token_ids)[0], dtype="bool"))
    if image_ids is not None:
        image_ids = ops.reshape(image_ids, (-1,))
        same_image = ops.expand_dims(image_ids, 1) == ops.expand_dims(image_ids, 0)
        positives = ops.logical_or(positives, same_image)
    return ops.cast(positives, "float32")


def contrastive_loss(logits, positives, loss="clip"):
    """Mean loss of a batch's (images, texts) logits.

    clip: CLIP's symmetric cross-entropy, images→texts and texts→images
    averaged; a row with several positives has them as equal soft targets.
    sigmoid: SigLIP's pairwise sigmoid loss (keras-hub's `SigLIPLoss`),
    labels +1 on positives and -1 elsewhere, summed per image, averaged
    over the batch.
    """
    logits = ops.cast(logits, "float32")
    if loss == "sigmoid":
        # `call`: per-image sums, unreduced; the caller scales for replicas.
        return ops.mean(SigLIPLoss().call(2.0 * positives - 1.0, logits))
    if loss != "clip":
        raise ValueError(f"`loss` must be one of {LOSSES}; received {loss!r}")

    def soft_cross_entropy(rows, targets):
        targets = targets / ops.sum(targets, axis=-1, keepdims=True)
        return -ops.mean(ops.sum(targets * ops.log_softmax(rows, axis=-1), axis=-1))

    image_to_text = soft_cross_entropy(logits, positives)
    text_to_image = soft_cross_entropy(ops.transpose(logits), ops.transpose(positives))
    return (image_to_text + text_to_image) / 2.0
