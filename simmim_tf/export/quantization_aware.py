"""Quantization-aware fine-tuning with Keras's fake-quant ops.

Once LayerNorm is kept in float, what separates the int8 model's answers
from Keras's is the 8-bit inputs of its matrix products (README, "int8 and
the 99% agreement target"). So the fake quantization goes where TFLite
quantizes those inputs: before every `Dense` and `Conv2D`, per tensor, 8
bits over the range that the converter's calibration records on the same
representative samples. Gradients pass straight through inside the range
(the op's own gradient). `benchmarks/quantization_aware.py` compares it with
plain fine-tuning; README has the result.

Nothing here changes the saved model: the fake-quant ops live in a
`with fake_quantized_inputs(...)` block and are gone after it, so the
fine-tuned model saves, loads and converts like any other.
"""

import contextlib

import keras
import numpy as np

QUANTIZED_LAYERS = (keras.layers.Dense, keras.layers.Conv2D)


def quantized_layers(model):
    """The layers whose inputs TFLite's int8 model holds in 8 bits."""
    return [layer for layer in model._flatten_layers() if isinstance(layer, QUANTIZED_LAYERS)]


@contextlib.contextmanager
def _wrapped_calls(layers, make_call):
    """Replaces each layer's `call` by `make_call(layer, original)` for the block."""
    for layer in layers:
        object.__setattr__(layer, "call", make_call(layer, layer.call))
    try:
        yield
    finally:
        for layer in layers:
            object.__delattr__(layer, "call")  # back to the class's method


def input_ranges(model, batches):
    """{layer path: (min, max)} of each quantized layer's input over `batches`
    (model input dicts), as min/max calibration records them. Eager."""
    lows, highs = {}, {}

    def recording(layer, call):
        def record(inputs, *args, **kwargs):
            x = keras.ops.convert_to_numpy(inputs)
            lows[layer.path] = min(lows.get(layer.path, np.inf), float(x.min()))
            highs[layer.path] = max(highs.get(layer.path, -np.inf), float(x.max()))
            return call(inputs, *args, **kwargs)

        return record

    with _wrapped_calls(quantized_layers(model), recording):
        for batch in batches:
            model(batch, training=False)
    if not lows:
        raise ValueError("no calibration batch reached a Dense or Conv2D layer")
    return {path: (lows[path], highs[path]) for path in lows}


@contextlib.contextmanager
def fake_quantized_inputs(model, ranges, num_bits=8):
    """Within the block, each quantized layer sees its input fake-quantized
    to `num_bits` over `ranges[layer.path]` (from `input_ranges`)."""
    layers = quantized_layers(model)
    missing = [layer.path for layer in layers if layer.path not in ranges]
    if missing:
        raise ValueError(f"no calibrated range for {missing}")

    def quantizing(layer, call):
        # TFLite's ranges always hold 0 (its zero point is an integer).
        low, high = min(ranges[layer.path][0], 0.0), max(ranges[layer.path][1], 0.0)

        def fake_quant(inputs, *args, **kwargs):
            quantized = keras.quantizers.fake_quant_with_min_max_vars(
                inputs, low, high, num_bits=num_bits
            )
            return call(quantized, *args, **kwargs)

        return fake_quant

    try:
        with _wrapped_calls(layers, quantizing):
            yield
    finally:
        # model.fit / predict keep their traced functions: drop the ones
        # traced with fake quantization.
        model.train_function = model.predict_function = model.test_function = None


def fine_tune(model, dataset, steps, learning_rate, ranges=None, verbose="auto"):
    """`steps` steps of the model's default training (`compile()`) on
    `dataset` at a constant `learning_rate`; with `ranges`, under
    `fake_quantized_inputs`. Returns the mean training loss over the steps."""
    model.compile(learning_rate=learning_rate)
    block = fake_quantized_inputs(model, ranges) if ranges else contextlib.nullcontext()
    with block:
        history = model.fit(
            dataset.repeat(), steps_per_epoch=steps, epochs=1, verbose=verbose, shuffle=False
        )
    return float(history.history["loss"][-1])


def snap_weights_to_int8(model):
    """Rounds every Dense and Conv2D kernel to its per-output-channel int8
    grid (symmetric, narrow range, as the converter quantizes weights).
    Returns how many kernels it changed. For measuring what int8 weights
    alone cost."""
    count = 0
    for layer in quantized_layers(model):
        kernel = layer.kernel
        w = keras.ops.convert_to_numpy(kernel)
        bound = np.maximum(np.abs(w.reshape(-1, w.shape[-1])).max(axis=0), 1e-12)
        kernel.assign(
            keras.quantizers.fake_quant_with_min_max_vars(
                w, -bound, bound, num_bits=8, narrow_range=True, axis=-1
            )
        )
        count += 1
    return count
