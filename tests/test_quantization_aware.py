"""Quantization-aware fine-tuning: fake quantization where TFLite quantizes,
gone again after the block (the export's use of the ranges: test_cli)."""

import types

import keras
import numpy as np
import pytest

from simmim_tf.export import quantization_aware as qa
from simmim_tf.layers.quantization_points import quantization_handler, quantization_point
from tests.conftest import tiny_inputs
from tests.test_models import tiny_vqa


def _model_and_ranges(scope="converter"):
    keras.utils.set_random_seed(0)
    model = tiny_vqa()
    x = tiny_inputs(batch=4)
    return model, x, qa.tensor_ranges(model, [x], scope)


def test_matmul_scope_covers_every_dense_and_conv_input():
    model, x, ranges = _model_and_ranges("matmul_inputs")
    layers = qa.quantized_layers(model)
    # conv stem, attention projections, MLPs, answer head
    assert len(layers) > 20
    assert sorted(ranges) == sorted(
        k for layer in layers for k in qa.input_keys(layer, "matmul_inputs")
    )
    assert all(low < high for low, high in ranges.values())
    # the image stem sees normalised pixels
    first_conv = next(layer for layer in layers if layer.name == "stem_conv_0")
    low, high = ranges[first_conv.path]
    assert -1.01 <= low < 0 < high <= 1.01


def test_converter_scope_names_the_tensors_inside_layers():
    model, _, ranges = _model_and_ranges()
    for layer in qa.quantized_layers(model):
        assert all(key in ranges for key in qa.input_keys(layer, "converter"))
    # The relation heads' offsets and squared distance: two tensors, two
    # ranges (concatenated, the distance's range would set the offsets' step).
    offsets = ranges["relational_attention/offset_hidden/input_0"]
    squared = ranges["relational_attention/offset_hidden/input_1"]
    assert offsets[0] < 0 <= squared[0] and offsets != squared
    norms = [k.rsplit("/", 1)[0] for k in ranges if k.endswith("/inv_std")]
    assert len(norms) > 5
    for norm in norms:
        for point in ("mean", "centred", "squared", "variance", "normalised", "scaled"):
            assert f"{norm}/{point}" in ranges
        assert ranges[f"{norm}/variance"][0] >= 0 and ranges[f"{norm}/inv_std"][0] > 0
    # softmax outputs take TFLite's fixed int8 scale, whatever calibration saw
    weights = [v for k, v in ranges.items() if k.endswith("attention/weights")]
    assert weights and all(v == (0.0, 255 / 256) for v in weights)
    # folded into the convolution by the converter: no range of their own
    assert not [k for k in ranges if "stem_norm" in k or "dropout" in k]


@pytest.mark.parametrize("scope", qa.SCOPES)
def test_fake_quantization_only_inside_the_block(scope):
    model, x, ranges = _model_and_ranges(scope)
    before = np.asarray(model(x))
    with qa.emulated_int8(model, ranges, scope, num_bits=8):
        eight = np.asarray(model(x))
    with qa.emulated_int8(model, ranges, scope, num_bits=3):
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


def test_weights_are_fake_quantized_only_when_asked():
    model, x, ranges = _model_and_ranges()
    with qa.emulated_int8(model, ranges, weights=False):
        activations = np.asarray(model(x))
    with qa.emulated_int8(model, ranges, weights=True):
        both = np.asarray(model(x))
    assert np.abs(both - activations).max() > 0


def test_missing_range_is_refused():
    for scope in qa.SCOPES:
        model, x, ranges = _model_and_ranges(scope)
        ranges.pop(next(iter(ranges)))
        with pytest.raises(ValueError, match="no calibrated range"):
            with qa.emulated_int8(model, ranges, scope):
                model(x)


def test_quantization_points_are_identity_outside_a_handler():
    layer = types.SimpleNamespace(path="probe")  # a layer's path, all a point reads
    x = np.arange(4.0)
    assert quantization_point(layer, "p", x) is x
    seen = []
    with quantization_handler(lambda key, t, fixed: seen.append((key, fixed)) or t * 2):
        np.testing.assert_array_equal(quantization_point(layer, "p", x, (0, 1)), 2 * x)
        with pytest.raises(RuntimeError, match="already installed"):
            with quantization_handler(lambda key, t, fixed: t):
                pass
    assert seen == [("probe/p", (0, 1))]
    assert quantization_point(layer, "p", x) is x


def test_snapped_kernels_sit_on_their_int8_grid():
    model, _, _ = _model_and_ranges()
    count = qa.snap_weights_to_int8(model)
    assert count == len(qa.quantized_layers(model))
    kernel = qa.quantized_layers(model)[-1].kernel.numpy()
    columns = kernel.reshape(-1, kernel.shape[-1])
    steps = columns / (np.abs(columns).max(axis=0) / 127)
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-3)


def test_float_prefixes_keep_a_part_of_the_model_out_of_int8():
    model, x, ranges = _model_and_ranges()
    before = np.asarray(model(x))
    with qa.emulated_int8(model, ranges):
        everything = np.asarray(model(x))
    # every part of the model in float: nothing is quantized
    parts = {key.split("/")[0] for key in ranges}
    parts |= {layer.path.split("/")[0] for layer in qa.quantized_layers(model)}
    with qa.emulated_int8(model, ranges, float_prefixes=parts):
        np.testing.assert_array_equal(np.asarray(model(x)), before)
    # the answer head in float: its ranges are not needed, and the output
    # differs from both the float and the fully fake-quantized one
    kept = {key: value for key, value in ranges.items() if not key.startswith("answer_head")}
    assert len(kept) < len(ranges)
    with qa.emulated_int8(model, kept, float_prefixes=["answer_head"]):
        partial = np.asarray(model(x))
    assert np.abs(partial - everything).max() > 0
    assert np.abs(partial - before).max() > 0
    # a prefix covers whole path segments only: "answer" is not "answer_head"
    with pytest.raises(ValueError, match="no calibrated range for answer_head"):
        with qa.emulated_int8(model, kept, float_prefixes=["answer"]):
            model(x)
    # the matmul_inputs scope takes them too: no range needed for the head,
    # the other Dense inputs still quantized
    matmul_ranges = qa.tensor_ranges(model, [x], "matmul_inputs")
    kept = {k: v for k, v in matmul_ranges.items() if not k.startswith("answer_head/")}
    with qa.emulated_int8(model, kept, "matmul_inputs", float_prefixes=["answer_head"]):
        assert np.abs(np.asarray(model(x)) - before).max() > 0
