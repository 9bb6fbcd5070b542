"""Loading a task whose `compile` only fills defaults: replay its saved
compile arguments."""

import keras


class ReplayedCompile:
    """A `keras.Model` mixin. Keras skips compile on load for models that
    override `compile`; ours only fill defaults, so the saved arguments can
    be replayed (and the optimizer built, to receive its saved state)."""

    def compile_from_config(self, config):
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)
