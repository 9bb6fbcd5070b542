"""An optimizer mixin that reads the learning-rate schedule once a step for
weight decay, not once per weight."""

import keras


class WeightDecayAtOneRate:
    """An optimizer mixin (TensorFlow backend): decoupled weight decay reads
    the learning rate once a step and applies it to every weight.

    Keras 3.15's TensorFlow optimizer reads `self.learning_rate` inside the
    per-weight update of `_apply_weight_decay`, so a schedule (the tasks'
    warm-up and cosine: a `cond` and a cosine) is traced into the step once
    per weight: 300 copies in the `tiny` model's train step, traced into
    a new model's first `fit` and run at every step (docs/training.md,
    "The first epoch"). The value is the same: both read the schedule at
    the step's iteration, before it is counted. Other backends compile the
    step with XLA, which merges the copies, and are unchanged.
    """

    def _apply_weight_decay(self, variables):
        if self.weight_decay is None or keras.backend.backend() != "tensorflow":
            return super()._apply_weight_decay(variables)
        import tensorflow as tf

        def apply_on(distribution, variables, **kwargs):
            rate = self.learning_rate * self.weight_decay  # one read a step

            def decay(variable):
                if self._use_weight_decay(variable):
                    variable.assign_sub(variable * tf.cast(rate, variable.dtype))

            for variable in variables:
                if isinstance(variable, keras.Variable):
                    variable = variable.value  # the tf.Variable
                distribution.extended.update(variable, decay, group=False)

        tf.__internal__.distribute.interim.maybe_merge_call(
            apply_on, self._distribution_strategy, variables
        )
