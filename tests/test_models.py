import os

import keras
import numpy as np
import pytest

from simmim_tf.models import SIMMIM_PRESETS, SimMIMBackbone, SimMIMVQA
from tests.conftest import TINY_BACKBONE, tiny_inputs
from tests.test_case import assert_config_is_constructor_args


def tiny_vqa(num_answers=5, **kwargs):
    return SimMIMVQA(SimMIMBackbone(**{**TINY_BACKBONE, **kwargs}), num_answers)


def test_backbone_outputs():
    backbone = SimMIMBackbone(**TINY_BACKBONE)
    out = backbone(tiny_inputs(batch=2, length=8))
    regions = backbone.grid_shape[0] * backbone.grid_shape[1]
    assert regions == 16
    assert tuple(out["memory"].shape) == (2, 4, 32)
    assert tuple(out["pooled"].shape) == (2, 32)
    assert tuple(out["visual_attention"].shape) == (2, 2, 8, regions)
    assert tuple(out["textual_attention"].shape) == (2, 2, regions, 8)
    assert tuple(out["memory_attention"].shape) == (2, 2, 4, regions + 8)
    assert_config_is_constructor_args(backbone)
    assert backbone.get_config().keys() - {"name", "trainable", "dtype"} == TINY_BACKBONE.keys()


def test_vqa_padding_invariance():
    model = tiny_vqa()
    x = tiny_inputs(batch=3, length=6, real=5)
    padded = {
        "images": x["images"],
        "token_ids": np.pad(x["token_ids"], ((0, 0), (0, 4))),
        "padding_mask": np.pad(x["padding_mask"], ((0, 0), (0, 4))),
    }
    np.testing.assert_allclose(np.asarray(model(x)), np.asarray(model(padded)), atol=1e-5)


def test_vqa_training_steps_lower_the_loss():
    keras.utils.set_random_seed(1)
    model = tiny_vqa()
    model.compile(learning_rate=3e-3)
    x = tiny_inputs(batch=8, length=8)
    y = np.arange(8) % 5
    before = model.evaluate(x, y, verbose=0)[0]
    model.fit(x, y, epochs=15, batch_size=8, verbose=0)
    after = model.evaluate(x, y, verbose=0)[0]
    assert after < 0.8 * before, (before, after)


def test_vqa_keras_save_and_load_identical(tmp_path):
    model = tiny_vqa()
    model.compile()
    x = tiny_inputs()
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, SimMIMVQA) and isinstance(loaded.backbone, SimMIMBackbone)
    np.testing.assert_array_equal(np.asarray(model(x)), np.asarray(loaded(x)))
    assert loaded.get_config() == model.get_config()
    assert_config_is_constructor_args(loaded)
    assert loaded.compiled


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_vqa_mixed_precision(policy):
    model = SimMIMVQA(SimMIMBackbone(**TINY_BACKBONE, dtype=policy), 5, dtype=policy)
    logits = model(tiny_inputs())
    assert logits.dtype == "float32"  # logits stay float32 for the loss
    assert np.all(np.isfinite(np.asarray(logits)))
    model.compile()
    model.fit(tiny_inputs(batch=4), np.arange(4) % 5, verbose=0)


def test_presets():
    assert set(SIMMIM_PRESETS) == {"tiny", "small", "base"}
    model = SimMIMVQA.from_preset("tiny", num_answers=7, vocabulary_size=40, image_size=75)
    assert model.backbone.image_size == 75
    x = tiny_inputs(batch=1, image_size=75, vocabulary_size=40)
    assert tuple(model(x).shape) == (1, 7)
    with pytest.raises(ValueError, match="Unknown preset"):
        SimMIMVQA.from_preset("huge", num_answers=7, vocabulary_size=40, image_size=75)
    sizes = [
        SimMIMVQA.from_preset(p, num_answers=10, vocabulary_size=40, image_size=75).count_params()
        for p in ("tiny", "small")
    ]
    assert sizes[0] < sizes[1]


def test_answer_with_attention_accepts_float_pixels():
    model = tiny_vqa()
    x = tiny_inputs()
    floats = {**x, "images": x["images"].astype("float32")}
    out = model.answer_with_attention(floats)
    np.testing.assert_allclose(np.asarray(out["logits"]), np.asarray(model(x)), atol=1e-5)
