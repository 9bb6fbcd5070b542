"""The keras-hub contract: raw images and strings through the attached
preprocessor, `save_to_preset` / `from_preset` on local folders, and
keras-hub's own `Backbone.from_preset` finding our classes."""

import json
import os
import shutil

import keras
import keras_hub
import numpy as np
import pytest

from simmim_tf.errors import SimMIMInputError
from simmim_tf.models import (
    SimMIMBackbone,
    SimMIMTokenizer,
    SimMIMVQA,
    SimMIMVQAPreprocessor,
)
from simmim_tf.preprocessing.question_tokenizer import QuestionTokenizer
from tests.conftest import TINY_BACKBONE
from tests.test_case import TestCase

COLOURS = ["red", "blue", "green", "gray"]


def _data(n=48, seed=0):
    rng = np.random.default_rng(seed)
    colours = rng.integers(0, len(COLOURS), n)
    images = rng.integers(0, 60, (n, 40, 40, 3)).astype(np.uint8)
    for i, c in enumerate(colours):  # a bright square whose colour is the answer
        images[i, 10:30, 10:30] = [(200, 0, 0), (0, 0, 200), (0, 200, 0), (128, 128, 128)][c]
    questions = [f"what colour is the square number {i % 3}?" for i in range(n)]
    answers = [COLOURS[c] for c in colours]
    return {"images": images, "questions": questions}, answers


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    keras.utils.set_random_seed(0)
    x, y = _data()
    preprocessor = SimMIMVQAPreprocessor.from_data(
        x["questions"], y, image_size=32, sequence_length=8
    )
    backbone = SimMIMBackbone(
        **{
            **TINY_BACKBONE,
            "vocabulary_size": preprocessor.tokenizer.vocabulary_size(),
            "max_sequence_length": 8,
        }
    )
    model = SimMIMVQA(backbone, len(preprocessor.answers), preprocessor=preprocessor)
    model.compile(learning_rate=3e-3)
    history = model.fit(x, y, batch_size=16, epochs=6, verbose=0)
    preset = str(tmp_path_factory.mktemp("preset") / "colours")
    model.save_to_preset(preset)
    return model, history.history, preset


def test_fit_on_raw_images_and_answer_strings(trained):
    _, history, _ = trained
    assert history["loss"][-1] < 0.8 * history["loss"][0], history["loss"]


def test_predict_and_evaluate_take_raw_inputs(trained):
    model, _, _ = trained
    x, y = _data(8, seed=1)
    logits = model.predict(x, verbose=0)
    assert logits.shape == (8, len(COLOURS))
    loss, accuracy = model.evaluate(x, y, verbose=0)
    assert np.isfinite(loss) and 0.0 <= accuracy <= 1.0


def test_answer_takes_images_as_people_have_them(trained):
    model, _, _ = trained
    x, _ = _data(2, seed=2)
    rgba = np.concatenate([x["images"][0], np.full((40, 40, 1), 255, np.uint8)], axis=-1)
    large = np.kron(x["images"][0], np.ones((3, 3, 1), np.uint8))  # 120×120
    gray = x["images"][0].mean(axis=-1).astype(np.uint8)
    rgb_answer = model.answer(x["images"][0], "what colour is the square?")
    for image in (rgba, large, gray):
        prediction = model.answer(image, "what colour is the square?")
        assert prediction.answer in COLOURS
    assert model.answer(rgba, "what colour is the square?").answer == rgb_answer.answer
    zebra = model.answer(x["images"][0], "What colour is the zebra?")
    assert zebra.unknown_words == ["zebra"]
    assert zebra.attention_map.shape == model.backbone.grid_shape
    assert [p[0] for p in zebra.top_k][0] == zebra.answer and len(zebra.top_k) == 3
    batch = model.answer(list(x["images"]), ["what colour?", "what colour is it"])
    assert len(batch) == 2
    with pytest.raises(SimMIMInputError, match="empty question"):
        model.answer(x["images"][0], " ?! ")


class TestPresets(TestCase):
    def test_preset_round_trip(self, trained, tmp_path):
        model, _, _ = trained
        x, _ = _data(4, seed=3)
        preset = str(tmp_path / "again")
        loaded = self.run_preset_test(model, x, preset)
        for name in ("task.json", "preprocessor.json", "tokenizer.json", "task.weights.h5"):
            assert os.path.isfile(os.path.join(preset, name)), name
        _check_reloaded(model, loaded, preset)


def _check_reloaded(model, loaded, preset):
    assert loaded.preprocessor.answers == model.preprocessor.answers
    assert loaded.preprocessor.tokenizer.get_vocabulary() == (
        model.preprocessor.tokenizer.get_vocabulary()
    )
    backbone = keras_hub.models.Backbone.from_preset(preset)
    assert isinstance(backbone, SimMIMBackbone)
    assert backbone.get_config() == model.backbone.get_config()
    again = SimMIMVQAPreprocessor.from_preset(preset)
    assert again.answers == model.preprocessor.answers


def test_keras_file_keeps_the_preprocessor(trained, tmp_path):
    model, _, _ = trained
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    x, _ = _data(4, seed=4)
    np.testing.assert_allclose(model.predict(x, verbose=0), loaded.predict(x, verbose=0), atol=1e-5)
    assert loaded.preprocessor.answers == model.preprocessor.answers


def test_broken_presets_are_refused_in_one_line(trained, tmp_path):
    _, _, preset = trained
    missing = str(tmp_path / "missing")
    shutil.copytree(preset, missing)
    os.remove(os.path.join(missing, "model.weights.h5"))
    with pytest.raises(SimMIMInputError, match=r"missing: not a complete preset \(missing model"):
        SimMIMVQA.from_preset(missing)
    other = str(tmp_path / "other")
    shutil.copytree(preset, other)
    with open(os.path.join(other, "task.json")) as f:
        task = json.load(f)
    task["registered_name"] = "keras_hub>BertTextClassifier"
    with open(os.path.join(other, "task.json"), "w") as f:
        json.dump(task, f)
    with pytest.raises(SimMIMInputError, match="holds a keras_hub>BertTextClassifier preset"):
        SimMIMVQA.from_preset(other)
    with pytest.raises(SimMIMInputError, match="nowhere: not a preset folder"):
        SimMIMVQA.from_preset(str(tmp_path / "nowhere"))


def test_an_answer_outside_the_vocabulary_fails_by_name(trained):
    model, _, _ = trained
    x, y = _data(4, seed=5)
    y[2] = "purple"
    with pytest.raises(Exception, match="purple"):
        model.evaluate(x, y, verbose=0)


def test_tokenizer_matches_the_python_twin(tmp_path):
    questions = ["Is the RED object on the left?", "what's the colour of the blue-ish one"]
    python = QuestionTokenizer.fit(questions[:1], 6)
    layer = SimMIMTokenizer(python.vocabulary, sequence_length=6)
    np.testing.assert_array_equal(np.asarray(layer(questions)), python.encode_batch(questions)[0])
    layer.save_assets(str(tmp_path))
    reloaded = SimMIMTokenizer(sequence_length=6)
    reloaded.load_assets(str(tmp_path))
    assert reloaded.get_vocabulary() == python.vocabulary
    assert reloaded.vocabulary_size() == python.vocabulary_size
    text = np.asarray(layer.detokenize(layer(["is the red object"])))[0]
    assert (text.decode() if isinstance(text, bytes) else str(text)) == "is the red object"
