"""Quantization-aware fine-tuning: fake quantization where TFLite quantizes,
gone again after the block."""

import keras
import numpy as np
import pytest

from simmim_tf.export import quantization_aware as qa
from tests.conftest import tiny_inputs
from tests.test_models import tiny_vqa


def _model_and_ranges():
    keras.utils.set_random_seed(0)
    model = tiny_vqa()
    x = tiny_inputs(batch=4)
    return model, x, qa.input_ranges(model, [x])


def test_ranges_cover_every_dense_and_conv_input():
    model, x, ranges = _model_and_ranges()
    layers = qa.quantized_layers(model)
    # conv stem, attention projections, MLPs, answer head
    assert len(layers) > 20
    assert sorted(ranges) == sorted(layer.path for layer in layers)
    assert all(low < high for low, high in ranges.values())
    # the image stem sees normalised pixels
    first_conv = next(layer for layer in layers if layer.name == "stem_conv_0")
    low, high = ranges[first_conv.path]
    assert -1.01 <= low < 0 < high <= 1.01


def test_fake_quantization_only_inside_the_block():
    model, x, ranges = _model_and_ranges()
    before = np.asarray(model(x))
    with qa.fake_quantized_inputs(model, ranges, num_bits=8):
        eight = np.asarray(model(x))
    with qa.fake_quantized_inputs(model, ranges, num_bits=3):
        three = np.asarray(model(x))
        traced = model.predict(x, verbose=0)
    # nothing traced with fake quantization is kept (the CLI test covers fine_tune)
    assert model.predict_function is None
    after = np.asarray(model(x))
    np.testing.assert_allclose(model.predict(x, verbose=0), after, atol=1e-5)
    np.testing.assert_allclose(traced, three, atol=1e-5)
    np.testing.assert_array_equal(before, after)
    err8, err3 = np.abs(eight - before).max(), np.abs(three - before).max()
    assert 0 < err8 < err3, (err8, err3)


def test_missing_range_is_refused():
    model, _, ranges = _model_and_ranges()
    ranges.pop(next(iter(ranges)))
    with pytest.raises(ValueError, match="no calibrated range"):
        with qa.fake_quantized_inputs(model, ranges):
            pass


def test_snapped_kernels_sit_on_their_int8_grid():
    model, _, _ = _model_and_ranges()
    count = qa.snap_weights_to_int8(model)
    assert count == len(qa.quantized_layers(model))
    kernel = qa.quantized_layers(model)[-1].kernel.numpy()
    columns = kernel.reshape(-1, kernel.shape[-1])
    steps = columns / (np.abs(columns).max(axis=0) / 127)
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-3)
