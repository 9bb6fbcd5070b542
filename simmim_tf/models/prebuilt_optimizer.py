"""`fit` that builds the optimizer first, so that TensorFlow traces the
train step once instead of twice."""

import keras


def build_optimizer(model):
    """Creates `model`'s optimizer variables now, if the model's own exist.

    Keras on TensorFlow, outside a tf.distribute strategy, leaves an unbuilt
    optimizer to be built inside the first trace of the train step. A
    `tf.function` that creates variables is traced twice (once to create
    them, once more without), so the first epoch pays the step's tracing
    twice. Under a strategy Keras builds it beforehand, as here; the other
    backends always do (and their models have no `distribute_strategy`).
    """
    if keras.backend.backend() != "tensorflow":
        return
    if model.optimizer is None or model.optimizer.built or not model.built:
        return
    with model.distribute_strategy.scope():
        model.optimizer.build(model.trainable_variables)


class PrebuiltOptimizer:
    """A `keras.Model` mixin: `fit` calls `build_optimizer` first (a new
    `tiny` model's first fit: 13 to 17 s instead of 27 to 29 s on one core,
    `benchmarks/first_fit_tracing.py`, docs/training.md)."""

    def fit(self, *args, **kwargs):
        build_optimizer(self)
        return super().fit(*args, **kwargs)


def count_train_step_traces(model):
    """Counts the times `fit` traces `model.train_step` from now on (a
    Python call of it is a trace; running the traced graph calls no Python).
    Returns a list that grows by one per trace (the check in the tests and
    `benchmarks/first_fit_tracing.py`)."""
    traces = []
    step = model.train_step
    model.train_step = lambda data: traces.append(1) or step(data)
    return traces
