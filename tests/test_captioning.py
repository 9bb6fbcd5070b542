"""Captioning: the causal decoder and its key/value cache, the
teacher-forcing preprocessor, `SimMIMCaptioner` through the shared task
checks, generation (cached equal to uncached, beam search), BLEU-4 and
CIDEr-D, and the CLI from training to the edge runtime, with its refusals."""

import json
import os

import keras
import numpy as np
import pytest

from simmim_tf.caption_metrics import caption_scores
from simmim_tf.cli import main
from simmim_tf.errors import SimMIMInputError
from simmim_tf.layers import CaptionDecoder
from simmim_tf.models import SimMIMBackbone, SimMIMCaptioner, SimMIMCaptionerPreprocessor
from simmim_tf.preprocessing.question_tokenizer import END, START
from tests.conftest import TINY_BACKBONE
from tests.test_case import TestCase

CAPTIONS = [
    "a small red circle",
    "a large blue square to the left of a small red circle",
    "a green diamond",
    "two objects: a gray triangle and a cyan square",
    "a large yellow triangle",
    "a small blue circle above a large red square",
]
LENGTH = 12


def tiny_captioner():
    preprocessor = SimMIMCaptionerPreprocessor.from_data(CAPTIONS, 32, LENGTH)
    backbone = SimMIMBackbone(
        **{**TINY_BACKBONE, "vocabulary_size": preprocessor.tokenizer.vocabulary_size(),
           "max_sequence_length": LENGTH}
    )  # fmt: skip
    return SimMIMCaptioner(backbone, decoder_layers=2, preprocessor=preprocessor)


def tiny_images(seed=0):
    shape = (len(CAPTIONS), 32, 32, 3)
    return np.random.default_rng(seed).integers(0, 256, shape).astype(np.uint8)


class TestCaptionDecoder(TestCase):
    def test_layer_and_cached_steps_equal_the_full_pass(self):
        rng = np.random.default_rng(0)
        decoder = CaptionDecoder(
            20, max_length=8, hidden_dim=16, num_layers=2, num_heads=2, intermediate_dim=32
        )
        ids = rng.integers(1, 20, (3, 6)).astype("int32")
        regions = rng.normal(size=(3, 9, 16)).astype("float32")
        full = np.asarray(self.run_layer_test(decoder, (ids, regions), [(3, 6, 20)]))
        cache = decoder.empty_cache(3)
        assert tuple(cache.shape) == (3, 2 * 2 * 2, 8, 8)
        for t in range(6):
            logits, cache = decoder.step(ids[:, t : t + 1], np.full((3, 1), t), regions, cache)
            np.testing.assert_allclose(np.asarray(logits), full[:, t], atol=1e-4)
        # Causal: a later token changes nothing before it.
        changed = ids.copy()
        changed[:, 4] = (changed[:, 4] + 1) % 20
        again = np.asarray(decoder(changed, regions))
        np.testing.assert_allclose(again[:, :4], full[:, :4], atol=1e-5)
        assert not np.allclose(again[:, 4], full[:, 4], atol=1e-4)


def test_preprocessor_packs_start_words_end_and_shifts_by_one():
    preprocessor = SimMIMCaptionerPreprocessor.from_data(CAPTIONS, 32, 5)
    vocabulary = preprocessor.tokenizer.get_vocabulary()
    assert vocabulary[:4] == ["[PAD]", "[OOV]", START, END]
    images = tiny_images()[:2]
    x, y, weights = preprocessor({"images": images, "captions": ["A green diamond!", CAPTIONS[1]]})
    ids, y, weights = (np.asarray(t) for t in (x["token_ids"], y, weights))
    words = [vocabulary[i] for i in ids[0]]
    assert words == [START, "a", "green", "diamond", END]
    assert [vocabulary[i] for i in y[0]] == ["a", "green", "diamond", END, "[PAD]"]
    np.testing.assert_array_equal(weights[0], [1, 1, 1, 1, 0])
    # A long caption keeps its first words and still ends with [END].
    assert ids[1, 0] == preprocessor.start_token_id and y[1, -1] == preprocessor.end_token_id
    assert weights[1].all()
    assert x["images"].shape == (2, 32, 32, 3)


class TestSimMIMCaptioner(TestCase):
    def test_config_fit_generate_and_cache(self):
        model = tiny_captioner()
        clone = SimMIMCaptioner.from_config(model.get_config())
        assert clone.decoder_layers == 2 and clone.decoder.max_length == LENGTH
        # The question encoder and fusion layers are kept out of training.
        trainable = {id(v) for v in model.trainable_weights}
        unused = model.backbone.get_layer("question_encoder").weights
        assert unused and not any(id(v) in trainable for v in unused)
        model.compile(learning_rate=3e-3)
        images = tiny_images()
        history = model.fit(
            {"images": images, "captions": CAPTIONS}, epochs=25, batch_size=6, verbose=0
        ).history["loss"]
        assert history[-1] < 0.5 * history[0], history
        # Greedy with the cache equals greedy re-running the whole sequence.
        pixels = np.asarray(model.preprocessor.image_converter(images[:3]))
        cached = model.generate_ids(pixels, max_length=6)
        sequence = cached[:, :1]
        for _ in range(6):
            logits = model.predict({"images": pixels, "token_ids": sequence}, verbose=0)
            sequence = np.concatenate([sequence, np.argmax(logits[:, -1:], -1)], axis=1)
        end = model.preprocessor.end_token_id
        for row, full in zip(cached, sequence, strict=True):
            stop = list(full).index(end) + 1 if end in full else len(full)
            np.testing.assert_array_equal(row[:stop], full[:stop])
        captions = model.generate(images)
        assert all(isinstance(c, str) and c for c in captions)
        beams = model.generate(images[:2], num_beams=3)
        assert len(beams) == 2 and all(beams)
        assert model.generate(images[:1], max_length=2)[0].count(" ") <= 1
        with pytest.raises(SimMIMInputError, match="max_length must be 1 to 12"):
            model.generate(images[:1], max_length=13)
        with pytest.raises(SimMIMInputError, match="num_beams must be 1 to 16"):
            model.generate(images[:1], num_beams=0)

    def test_preset_round_trip(self, tmp_path):
        model = tiny_captioner()
        model.compile(sampler="greedy")
        images = tiny_images(1)
        before = model.generate(images[:2])
        model.save_to_preset(str(tmp_path))
        loaded = SimMIMCaptioner.from_preset(str(tmp_path))
        assert loaded.generate(images[:2]) == before
        model.save(str(tmp_path / "captioner.keras"))
        reloaded = keras.saving.load_model(str(tmp_path / "captioner.keras"))
        assert reloaded.generate(images[:2]) == before
        with pytest.raises(ValueError, match="needs a preprocessor"):
            SimMIMCaptioner.from_preset("tiny")


def test_caption_scores_tokenise_and_match_hand_computed_bleu():
    same = caption_scores([["A large red circle.", "a big red circle"]], ["a LARGE red circle"])
    assert same["bleu4"] > 99.9
    # Four of five reference words in order: every precision 1, brevity
    # penalty exp(1 - 5/4).
    short = caption_scores([["a b c d e"]], ["a b c d"])
    np.testing.assert_allclose(short["bleu4"], 100 * np.exp(1 - 5 / 4), atol=0.01)
    refs = [["a red circle left of a blue square"], ["two green squares"], ["a gray diamond"]]
    good = caption_scores(refs, ["a red circle left of a blue square", "two green squares", "a"])
    bad = caption_scores(refs, ["a blue square", "a red circle", "two squares"])
    assert good["cider_d"] > bad["cider_d"] >= 0
    with pytest.raises(SimMIMInputError, match="2 generated captions for 3 images"):
        caption_scores(refs, ["a", "b"])


def test_cli_train_evaluate_export_caption(captioning_export, tmp_path, capsys):
    data, run, export = (captioning_export[k] for k in ("data", "run", "export"))
    assert main(["evaluate", "--run", run, "--data", data]) == 0
    out = capsys.readouterr().out
    assert "BLEU-4" in out and "CIDEr-D" in out
    scores = json.load(open(os.path.join(run, "eval.json")))
    assert scores["captions"]["images"] == 6 and scores["examples"][0]["references"]
    # The edge runtime's float32 greedy captions are Keras's.
    from simmim_tf.data.caption_dataset import load_captions
    from simmim_tf.edge.edge_captioner import EdgeCaptioner

    model = SimMIMCaptioner.from_preset(run)
    test = load_captions(data, "test", image_size=64)
    edge = EdgeCaptioner(export, "float32", num_threads=1)
    assert [edge.caption(image) for image in test.images] == model.generate(test.images)
    assert len(edge.last_timing["step_ms"]) >= 1
    report = json.load(open(os.path.join(export, "captioner_report.json")))
    assert report["variants"]["float32"]["same_as_keras"] == 100.0
    # Builtin ops only (the conversion refuses others), and none the GPU
    # delegate refuses: no WHILE, no dynamic shape, nothing above 4-D.
    from simmim_tf.export.gpu_compatibility import gpu_delegate_problems

    for part in ("encoder", "decoder"):
        path = os.path.join(export, f"captioner_float32_{part}.tflite")
        assert gpu_delegate_problems(path) == [], part
    image = os.path.join(data, test.image_paths[0])
    assert main(["caption", "--model", run, "--image", image]) == 0
    keras_caption = capsys.readouterr().out.strip()
    assert keras_caption == model.generate(test.images[:1])[0]
    tflite = os.path.join(export, "captioner_float32_decoder.tflite")
    assert main(["caption", "--model", tflite, "--image", image]) == 0
    assert capsys.readouterr().out.strip() == keras_caption
    # Refusals, one line each.
    for argv, message in [
        (["caption", "--model", data, "--image", image], "not a captioner"),
        (["caption", "--model", export, "--image", image, "--beams", "3"], "decodes greedily"),
        (["caption", "--model", export, "--image", image, "--variant", "int8"], "no int8 files"),
        (["caption", "--model", run, "--image", image, "--max-length", "99"], "max_length"),
        (["caption", "--model", run, "--image", str(tmp_path / "none.png")], "none.png: not found"),
        (["evaluate", "--run", run, "--data", data, "--beams", "0"], "num_beams must be 1 to 16"),
    ]:
        assert main(argv) == 2, argv
        assert message in capsys.readouterr().err, argv
