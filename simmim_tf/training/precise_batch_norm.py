"""PreciseBatchNorm: the stem's batch-norm statistics recomputed from
training images before each measurement and before the model is saved."""

import keras


def batch_norm_layers(layer):
    """Every `BatchNormalization` inside `layer` (itself included)."""
    return [
        sub
        for sub in layer._flatten_layers(include_self=True)
        if isinstance(sub, keras.layers.BatchNormalization)
    ]


def recompute_batch_norm_statistics(stem, image_batches):
    """Sets the moving mean and variance of every batch norm in `stem` to
    the mean of its batch statistics over `image_batches` (uint8 images,
    (batch, H, W, 3) each): the population statistics of the current
    weights, where the moving averages trail the weights by about
    1 / (1 - momentum) steps. Returns the number of batches used."""
    layers = batch_norm_layers(stem)
    momenta = [layer.momentum for layer in layers]
    count = 0
    try:
        for count, images in enumerate(image_batches, start=1):
            for layer in layers:
                layer.momentum = (count - 1) / count  # the running mean of the batches so far
            stem(images, training=True)
    finally:
        for layer, momentum in zip(layers, momenta, strict=True):
            layer.momentum = momentum
    return count


class PreciseBatchNorm(keras.callbacks.Callback):
    """Recomputes the batch-norm statistics of `stem` over `batches`
    batches of the training images before every validation pass, at the
    end of every epoch without one (before `BestCheckpoint` saves: put this
    callback first) and when training ends ("precise BN", Wu & Johnson 2021, "Rethinking 'Batch' in
    BatchNorm").

    Why: training moves the stem's weights faster than the moving averages
    (momentum 0.99: about the last 100 steps) follow, and a model measured
    with stale statistics can lose most of what it has learnt. In one
    Sort-of-CLEVR run without scenes the validation accuracy read 46.9%
    with the moving averages and 93.4% with recomputed statistics, at the
    same weights (benchmarks/results/without_scenes/README.md). The
    statistics replace the moving averages, which then go on from them.

    Args:
        stem: the layer holding the batch norms (the backbone's
            `patch_embedding`; the VQA, retrieval and captioning trainers
            pass it); nothing happens if it has none.
        dataset: tf.data.Dataset of the training batches, `(x, ...)` with
            `x["images"]`.
        batches: int. Batches per recomputation.
    """

    def __init__(self, stem, dataset, batches=50):
        super().__init__()
        self.stem = stem
        self.dataset = dataset
        self.batches = batches
        self._images = None
        self._fresh = False  # recomputed since the last training step

    def recompute(self):
        if not batch_norm_layers(self.stem):
            return
        if self._images is None:  # one iterator for the run, drawn on each time
            images = self.dataset.map(lambda x, *_: x["images"]).repeat()
            self._images = iter(images)
        batches = (next(self._images) for _ in range(self.batches))
        recompute_batch_norm_statistics(self.stem, batches)
        self._fresh = True

    def on_epoch_begin(self, epoch, logs=None):
        self._fresh = False

    def on_test_begin(self, logs=None):
        self.recompute()

    def on_epoch_end(self, epoch, logs=None):
        if not self._fresh:
            self.recompute()

    def on_train_end(self, logs=None):
        if not self._fresh:
            self.recompute()
