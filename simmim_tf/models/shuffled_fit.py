"""ShuffledFit: `fit` that reshuffles in-memory data every epoch, for the
package's keras-hub tasks."""

import keras


class ShuffledFit:
    """Mixin for a keras-hub `Task`: keras-hub turns arrays and lists into
    a tf.data pipeline batched in order, so Keras's `shuffle` is ignored;
    here they are shuffled every epoch when `shuffle`. A `tf.data.Dataset`
    is taken as it is: shuffle it in the pipeline."""

    def fit(self, x=None, y=None, batch_size=None, sample_weight=None, shuffle=True, **kwargs):
        import tensorflow as tf

        in_memory = x is not None and not isinstance(x, tf.data.Dataset)
        if in_memory and shuffle and not kwargs.get("validation_split"):
            samples = keras.utils.pack_x_y_sample_weight(x, y, sample_weight)
            count = len(y) if y is not None else len(next(iter(x.values())))
            x = (
                tf.data.Dataset.from_tensor_slices(samples)
                .shuffle(count, reshuffle_each_iteration=True)
                .batch(batch_size or 32)
            )
            y = sample_weight = batch_size = None
        return super().fit(
            x, y, batch_size=batch_size, sample_weight=sample_weight, shuffle=False, **kwargs
        )
