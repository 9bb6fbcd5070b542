"""Checks every layer and model goes through (keras-hub's TestCase idea)."""

import inspect

import keras
import numpy as np


def constructor_args(cls):
    names = set()
    for klass in cls.__mro__:
        if klass.__module__.startswith("keras") or klass is object:
            break
        params = inspect.signature(klass.__init__).parameters
        names |= {n for n, p in params.items() if n != "self" and p.kind is p.POSITIONAL_OR_KEYWORD}
    return names


def assert_config_is_constructor_args(layer):
    """get_config holds exactly the constructor's own arguments (plus Keras' base keys)."""
    base = set(keras.layers.Layer(name="x").get_config())
    own = set(layer.get_config()) - base
    assert own == constructor_args(type(layer)) - base, (own, constructor_args(type(layer)))


def run_layer_test(layer, call_args, expected_shapes, call_kwargs=None):
    """Eager call, symbolic call, config round-trip and mixed precision for one layer."""
    call_kwargs = call_kwargs or {}
    outputs = layer(*call_args, **call_kwargs)
    flat = keras.tree.flatten(outputs)
    assert [tuple(o.shape) for o in flat] == [tuple(s) for s in expected_shapes]

    symbolic = [keras.KerasTensor(np.shape(a), dtype=np.asarray(a).dtype) for a in call_args]
    symbolic_out = keras.tree.flatten(layer(*symbolic, **call_kwargs))
    assert [tuple(o.shape) for o in symbolic_out] == [tuple(s) for s in expected_shapes]

    assert_config_is_constructor_args(layer)
    clone = type(layer).from_config(layer.get_config())
    clone(*call_args, **call_kwargs)
    clone.set_weights(layer.get_weights())
    for a, b in zip(keras.tree.flatten(clone(*call_args, **call_kwargs)), flat, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)

    for policy in ("mixed_float16", "mixed_bfloat16"):
        mixed = type(layer).from_config({**layer.get_config(), "dtype": policy})
        mixed_out = keras.tree.flatten(mixed(*call_args, **call_kwargs))
        assert all(np.all(np.isfinite(np.asarray(o, np.float32))) for o in mixed_out)
    return outputs
