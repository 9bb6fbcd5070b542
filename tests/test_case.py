"""`TestCase`: the checks every layer, backbone, task and preset goes
through (keras-hub's `keras_hub/src/tests/test_case.py` idea), so that each
test file states only what is particular to its class."""

import inspect
import os

import keras
import numpy as np
import tensorflow as tf


def _keras_parent(cls):
    """The nearest Keras (or keras-hub) class `cls` derives from."""
    return next(k for k in cls.__mro__ if k.__module__.startswith("keras"))


def constructor_args(cls):
    """The arguments the package's own classes of `cls` add to its `__init__`."""
    names = set()
    for klass in cls.__mro__[: cls.__mro__.index(_keras_parent(cls))]:
        if "__init__" not in vars(klass):
            continue  # inherited: a Dense subclass takes Dense's arguments
        params = inspect.signature(klass.__init__).parameters
        names |= {n for n, p in params.items() if n != "self" and p.kind is p.POSITIONAL_OR_KEYWORD}
    return names


def assert_config_is_constructor_args(layer):
    """get_config holds exactly the constructor's own arguments, plus the
    keys of the Keras class it derives from (Layer's, or Dense's, ...)."""
    base = set(keras.layers.Layer(name="x").get_config())
    base |= set(_keras_parent(type(layer)).get_config(layer))
    own = set(layer.get_config()) - base
    assert own == constructor_args(type(layer)) - base, (own, constructor_args(type(layer)))


def _shapes(outputs):
    return [tuple(o.shape) for o in keras.tree.flatten(outputs)]


def _assert_all_close(a, b, atol):
    for x, y in zip(keras.tree.flatten(a), keras.tree.flatten(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol)


class TestCase:
    """Mixin for pytest test classes: `class TestSemanticMemory(TestCase)`."""

    def run_layer_test(
        self, layer, call_args, expected_shapes, call_kwargs=None, run_training_check=True
    ):
        """Eager and symbolic calls, config round trip, mixed precision and a
        training step (finite gradients that move some weight) for one layer."""
        call_kwargs = call_kwargs or {}
        outputs = layer(*call_args, **call_kwargs)
        assert _shapes(outputs) == [tuple(s) for s in expected_shapes]

        symbolic = keras.tree.map_structure(
            lambda a: keras.KerasTensor(np.shape(a), dtype=np.asarray(a).dtype), list(call_args)
        )
        assert _shapes(layer(*symbolic, **call_kwargs)) == [tuple(s) for s in expected_shapes]

        assert_config_is_constructor_args(layer)
        clone = type(layer).from_config(layer.get_config())
        clone(*call_args, **call_kwargs)
        clone.set_weights(layer.get_weights())
        _assert_all_close(clone(*call_args, **call_kwargs), outputs, atol=1e-6)

        for policy in ("mixed_float16", "mixed_bfloat16"):
            mixed = type(layer).from_config({**layer.get_config(), "dtype": policy})
            mixed_out = keras.tree.flatten(mixed(*call_args, **call_kwargs))
            assert all(np.all(np.isfinite(np.asarray(o, np.float32))) for o in mixed_out)

        if run_training_check and layer.trainable_weights:
            # On the clone: the caller goes on testing `layer` as it was.
            self._training_step(clone, call_args, call_kwargs)
        return outputs

    def _training_step(self, layer, call_args, call_kwargs):
        before = [np.array(w) for w in layer.trainable_weights]
        with tf.GradientTape() as tape:
            outputs = keras.tree.flatten(layer(*call_args, **call_kwargs, training=True))
            # Sum of squares over the float outputs: a loss every weight can move.
            loss = sum(
                tf.reduce_mean(tf.square(tf.cast(o, tf.float32)))
                for o in outputs
                if o.dtype.is_floating
            )
        # Dense tensors: an embedding lookup's gradient is IndexedSlices.
        grads = [
            None if g is None else tf.convert_to_tensor(g)
            for g in tape.gradient(loss, layer.trainable_weights)
        ]
        assert all(g is None or np.all(np.isfinite(np.asarray(g))) for g in grads)
        keras.optimizers.SGD(0.1).apply_gradients(
            [(g, w) for g, w in zip(grads, layer.trainable_weights, strict=True) if g is not None]
        )
        moved = [
            not np.array_equal(b, np.array(w))
            for b, w in zip(before, layer.trainable_weights, strict=True)
        ]
        assert any(moved), "a training step moved no weight"

    def run_backbone_test(self, cls, init_kwargs, input_data, expected_output_shapes):
        """Output shapes, config round trip with identical outputs, and a
        mixed-precision forward pass for a backbone."""
        backbone = cls(**init_kwargs)
        outputs = backbone(input_data)
        for name, shape in expected_output_shapes.items():
            assert tuple(outputs[name].shape) == tuple(shape), name
        assert_config_is_constructor_args(backbone)
        clone = cls.from_config(backbone.get_config())
        clone.set_weights(backbone.get_weights())
        _assert_all_close(clone(input_data), outputs, atol=1e-6)
        mixed = cls(**{**init_kwargs, "dtype": "mixed_bfloat16"})
        for value in keras.tree.flatten(mixed(input_data)):
            assert np.all(np.isfinite(np.asarray(value, np.float32)))
        return backbone

    def run_task_test(self, task, x, y, batch_size=8, epochs=1):
        """`fit`, `evaluate` and `predict` of a compiled task on `x`, `y`;
        returns the predictions."""
        history = task.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0)
        assert np.all(np.isfinite(history.history["loss"]))
        results = task.evaluate(x, y, batch_size=batch_size, verbose=0)
        assert np.all(np.isfinite(results))
        predictions = task.predict(x, batch_size=batch_size, verbose=0)
        assert len(predictions) == len(y)
        return predictions

    def run_model_saving_test(self, model, input_data, path):
        """`.keras` save and load: same class, same config, identical outputs."""
        model.save(path)
        loaded = keras.saving.load_model(path)
        assert type(loaded) is type(model)
        assert loaded.get_config() == model.get_config()
        _assert_all_close(
            model.predict(input_data, verbose=0), loaded.predict(input_data, verbose=0), 1e-5
        )
        return loaded

    def run_preset_test(self, model, input_data, preset_dir):
        """`save_to_preset` then `from_preset`: the files keras-hub expects,
        same class, identical outputs."""
        model.save_to_preset(preset_dir)
        for name in ("config.json", "metadata.json", "model.weights.h5"):
            assert os.path.isfile(os.path.join(preset_dir, name)), name
        loaded = type(model).from_preset(preset_dir)
        assert type(loaded) is type(model)
        _assert_all_close(
            model.predict(input_data, verbose=0), loaded.predict(input_data, verbose=0), 1e-5
        )
        return loaded
