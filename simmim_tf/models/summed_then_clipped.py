"""Optimizers that clip the gradient summed across replicas, as one device
clips the whole batch's gradient."""

import keras

from simmim_tf.models.weight_decay_once import WeightDecayAtOneRate


class SumThenClip:
    """An optimizer mixin: under tf.distribute (TensorFlow backend) the
    replicas' gradients are summed before clipping (`clipnorm`,
    `global_clipnorm`, `clipvalue`), not after.

    Keras 3.15 clips each replica's share and then sums the shares
    (`BaseOptimizer._backend_apply_gradients`, then the TensorFlow
    optimizer's `_all_reduce_sum_gradients`), so two replicas clip two half
    gradients where one device clips one whole: at the start of training 32
    of the `tiny` model's 150 gradients exceed norm 1 on a batch of 64, only
    14 on a replica's half (docs/distributed.md). One device, and the other
    backends, are unchanged.
    """

    def _backend_apply_gradients(self, grads, trainable_variables):
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            context = tf.distribute.get_replica_context()
            if context is not None and context.num_replicas_in_sync > 1:
                grads = context.all_reduce(tf.distribute.ReduceOp.SUM, list(grads))
        return super()._backend_apply_gradients(grads, trainable_variables)

    def _all_reduce_sum_gradients(self, grads_and_vars):
        return list(grads_and_vars)  # summed above, before clipping


@keras.saving.register_keras_serializable(package="simmim_tf")
class SimMIMAdamW(SumThenClip, WeightDecayAtOneRate, keras.optimizers.AdamW):
    """`keras.optimizers.AdamW` whose clipping is the same on N replicas as
    on one device (`SumThenClip`), and whose weight decay reads the
    learning-rate schedule once a step (`WeightDecayAtOneRate`): the tasks'
    default optimizer."""
