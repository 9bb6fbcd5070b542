"""The tasks' optimizer: Keras's AdamW, with weight decay reading the
learning-rate schedule once a step (`WeightDecayAtOneRate`)."""

import keras
import numpy as np
import tensorflow as tf

from simmim_tf.models.summed_then_clipped import SimMIMAdamW
from simmim_tf.training.vqa_trainer import warmup_cosine_schedule

WEIGHTS = 12  # variables of the model below: a schedule read per weight shows


def _fit(optimizer_class):
    keras.utils.set_random_seed(0)
    layers = [keras.layers.Dense(3, activation="relu") for _ in range(WEIGHTS // 2 - 1)]
    model = keras.Sequential([keras.Input((4,)), *layers, keras.layers.Dense(2)])
    schedule = warmup_cosine_schedule(1e-2, total_steps=12, warmup_fraction=0.25)
    model.compile(optimizer_class(schedule, weight_decay=0.1), loss="mse")
    x = np.random.default_rng(0).normal(size=(48, 4)).astype("float32")
    model.fit(x, x[:, :2], batch_size=8, epochs=2, shuffle=False, verbose=0)
    return model


def _schedule_reads(optimizer_class, variables):
    """`cond`s in a traced optimizer step: the warm-up schedule has one."""
    schedule = warmup_cosine_schedule(1e-2, total_steps=12, warmup_fraction=0.25)
    optimizer = optimizer_class(schedule, weight_decay=0.1)
    optimizer.build(variables)
    step = tf.function(lambda: optimizer.apply([tf.ones_like(v) for v in variables], variables))
    graph = step.get_concrete_function().graph
    return sum(op.type in ("If", "StatelessIf") for op in graph.get_operations())


def test_weights_as_keras_adamw_with_the_schedule_read_once_a_step():
    ours, keras_own = _fit(SimMIMAdamW), _fit(keras.optimizers.AdamW)
    assert int(ours.optimizer.iterations) == 12
    for a, b in zip(ours.get_weights(), keras_own.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert len(ours.trainable_variables) == WEIGHTS
    # Keras reads it for the update and again for each weight's decay.
    variables = ours.trainable_variables
    assert _schedule_reads(keras.optimizers.AdamW, variables) == 1 + WEIGHTS
    assert _schedule_reads(SimMIMAdamW, variables) == 2  # the update's and the decay's
