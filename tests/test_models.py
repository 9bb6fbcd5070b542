import keras
import numpy as np
import pytest

from simmim_tf.models import SIMMIM_PRESETS, SimMIMBackbone, SimMIMVQA
from simmim_tf.models.prebuilt_optimizer import count_train_step_traces
from tests.conftest import TINY_BACKBONE, tiny_inputs
from tests.test_case import TestCase, assert_config_is_constructor_args


def tiny_vqa(num_answers=5, **kwargs):
    return SimMIMVQA(SimMIMBackbone(**{**TINY_BACKBONE, **kwargs}), num_answers)


class TestSimMIMBackbone(TestCase):
    def test_backbone(self):
        regions, batch, length = 16, 2, 8
        backbone = self.run_backbone_test(
            SimMIMBackbone,
            TINY_BACKBONE,
            tiny_inputs(batch=batch, length=length),
            {
                "memory": (batch, 4, 32),
                "pooled": (batch, 32),
                "visual_attention": (batch, 2, length, regions),
                "textual_attention": (batch, 2, regions, length),
                "memory_attention": (batch, 2, 4, regions + length),
            },
        )
        assert backbone.grid_shape == (4, 4)
        assert backbone.get_config().keys() - {"name", "trainable", "dtype"} == (
            TINY_BACKBONE.keys()
        )

    def test_backbone_with_two_anchors_and_their_offset_along_the_question(self):
        regions, batch, length = 16, 2, 8
        options = {**TINY_BACKBONE["relational"], "num_anchors": 2, "gated_between": True}
        two_anchors = {**TINY_BACKBONE, "relational": options}
        backbone = self.run_backbone_test(
            SimMIMBackbone,
            two_anchors,
            tiny_inputs(batch=batch, length=length),
            {
                "memory": (batch, 4, 32),
                "pooled": (batch, 32),
                "anchor_attention": (batch, 2, regions),
            },
        )
        relational = backbone.get_layer("relational_attention")
        assert relational.num_anchors == 2 and relational.gated_between
        with pytest.raises(ValueError, match="gated_between needs num_anchors=2"):
            SimMIMBackbone(**{**TINY_BACKBONE, "relational": {**options, "num_anchors": 1}})


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
    traces = count_train_step_traces(model)
    model.fit(x, y, epochs=15, batch_size=8, verbose=0)
    after = model.evaluate(x, y, verbose=0)[0]
    assert after < 0.8 * before, (before, after)
    # The optimizer is built before the trace (`PrebuiltOptimizer`): a trace
    # that creates its variables would be traced a second time.
    assert len(traces) == 1


class TestSimMIMVQA(TestCase):
    def test_keras_save_and_load_identical(self, tmp_path):
        model = tiny_vqa()
        model.compile()
        loaded = self.run_model_saving_test(model, tiny_inputs(), str(tmp_path / "model.keras"))
        assert isinstance(loaded.backbone, SimMIMBackbone)
        assert_config_is_constructor_args(loaded)
        assert loaded.compiled

    def test_fit_evaluate_predict(self):
        model = tiny_vqa()
        predictions = self.run_task_test(model, tiny_inputs(batch=8), np.arange(8) % 5)
        assert predictions.shape == (8, 5)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_vqa_mixed_precision(policy):
    model = SimMIMVQA(SimMIMBackbone(**TINY_BACKBONE, dtype=policy), 5, dtype=policy)
    logits = model(tiny_inputs())
    assert logits.dtype == "float32"  # logits stay float32 for the loss
    assert np.all(np.isfinite(np.asarray(logits)))
    model.compile()
    model.fit(tiny_inputs(batch=4), np.arange(4) % 5, verbose=0)


def test_named_architectures_grow_and_unknown_names_are_refused():
    model = SimMIMVQA.from_preset("tiny", num_answers=7, vocabulary_size=40, image_size=75)
    assert model.backbone.image_size == 75
    x = tiny_inputs(batch=1, image_size=75, vocabulary_size=40)
    assert tuple(model(x).shape) == (1, 7)
    with pytest.raises(ValueError, match="huge: not a preset folder, nor a named architecture"):
        SimMIMVQA.from_preset("huge", num_answers=7, vocabulary_size=40, image_size=75)
    with pytest.raises(ValueError, match="needs a preprocessor or num_answers"):
        SimMIMVQA.from_preset("tiny", vocabulary_size=40, image_size=75)
    # Each named architecture is wider than the one before it (hidden size,
    # memory slots) and so larger.
    names = list(SIMMIM_PRESETS)
    widths = [SIMMIM_PRESETS[n]["hidden_dim"] for n in names]
    assert widths == sorted(widths) and len(set(widths)) == len(widths)
    models = [
        SimMIMVQA.from_preset(n, num_answers=10, vocabulary_size=40, image_size=75)
        for n in names[:2]
    ]
    assert models[0].count_params() < models[1].count_params()
    # Every size reasons: two anchors over the regions, read and refined.
    for name, model in zip(names[:2], models, strict=True):
        assert model.backbone.relational["num_anchors"] == 2, name
        x = tiny_inputs(batch=2, image_size=75, vocabulary_size=40)
        features = model.backbone.features(x["images"], x["token_ids"], x["padding_mask"])
        assert tuple(features["anchor_attention"].shape) == (2, 2, 100), name


def test_answer_with_attention_accepts_float_pixels():
    model = tiny_vqa()
    x = tiny_inputs()
    floats = {**x, "images": x["images"].astype("float32")}
    out = model.answer_with_attention(floats)
    np.testing.assert_allclose(np.asarray(out["logits"]), np.asarray(model(x)), atol=1e-5)
