"""Precise BN: the batch norms' statistics recomputed from training images."""

import keras
import numpy as np
import tensorflow as tf

from simmim_tf.layers import PatchEmbedding
from simmim_tf.training.precise_batch_norm import (
    PreciseBatchNorm,
    batch_norm_layers,
    recompute_batch_norm_statistics,
)


def test_statistics_are_the_mean_of_the_batch_statistics():
    norm = keras.layers.BatchNormalization(momentum=0.99)
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0 * i, 1.0 + i, (16, 4)).astype("float32") for i in range(3)]
    norm(batches[0])  # built, with moving averages at their start (0, 1)
    assert recompute_batch_norm_statistics(norm, batches) == 3
    np.testing.assert_allclose(
        np.array(norm.moving_mean), np.mean([b.mean(0) for b in batches], 0), rtol=1e-5
    )
    np.testing.assert_allclose(
        np.array(norm.moving_variance), np.mean([b.var(0) for b in batches], 0), rtol=1e-4
    )
    assert norm.momentum == 0.99  # put back


def test_callback_recomputes_the_stem_before_validation_from_training_images():
    stem = PatchEmbedding(hidden_dim=8, patch_size=4, stem="conv")
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (2, 8, 16, 16, 3)).astype("uint8")  # two batches of 8
    stem(images[0])
    norms = batch_norm_layers(stem)
    assert norms  # the conv stem has batch norms
    for norm in norms:  # stale statistics
        norm.moving_mean.assign(np.full(norm.moving_mean.shape, 5.0, "float32"))
    dataset = tf.data.Dataset.from_tensor_slices(({"images": images}, np.zeros(2)))
    callback = PreciseBatchNorm(stem, dataset, batches=4)  # b1, b2, b1, b2
    callback.on_epoch_begin(0)
    callback.on_test_begin()
    recomputed = [np.array(norm.moving_mean) for norm in norms]
    for norm in norms:
        norm.moving_mean.assign(np.full(norm.moving_mean.shape, 5.0, "float32"))
    recompute_batch_norm_statistics(stem, [images[0], images[1]])
    for norm, value in zip(norms, recomputed, strict=True):
        np.testing.assert_allclose(value, np.array(norm.moving_mean), rtol=1e-5, atol=1e-6)
        assert not np.allclose(value, 5.0)
    # Already recomputed for this epoch's validation: the epoch's end keeps them.
    norms[0].moving_mean.assign(recomputed[0] + 1.0)
    callback.on_epoch_end(0)
    np.testing.assert_allclose(np.array(norms[0].moving_mean), recomputed[0] + 1.0)
    # An epoch without validation recomputes at its end.
    callback.on_epoch_begin(1)
    callback.on_epoch_end(1)
    np.testing.assert_allclose(np.array(norms[0].moving_mean), recomputed[0], rtol=1e-5, atol=1e-6)
