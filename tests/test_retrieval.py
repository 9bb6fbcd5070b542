"""Image–text retrieval: the contrastive losses and their positives, the
towers' layers, `SimMIMRetriever` through the shared task checks, caption
data, Recall@K, the CLI from training to search, and its refusals."""

import json
import os

import keras
import numpy as np
import pytest

from simmim_tf.cli import main
from simmim_tf.data.caption_dataset import CaptionSet, load_captions
from simmim_tf.errors import SimMIMInputError
from simmim_tf.layers import ContrastiveHead, EmbeddingProjection
from simmim_tf.models import (
    SimMIMBackbone,
    SimMIMRetriever,
    SimMIMRetrieverPreprocessor,
)
from simmim_tf.models.contrastive_loss import contrastive_loss, pair_positives
from simmim_tf.retrieval_recall import recall_at_k
from tests.conftest import TINY_BACKBONE
from tests.test_case import TestCase

CAPTIONS = [
    "a small red circle",
    "a large blue square to the left of a small red circle",
    "a green diamond",
    "a small red circle",
    "two objects: a gray triangle and a cyan square",
    "a large yellow triangle",
]


def tiny_retriever(loss="clip"):
    preprocessor = SimMIMRetrieverPreprocessor.from_data(CAPTIONS, 32, 12)
    backbone = SimMIMBackbone(
        **{**TINY_BACKBONE, "vocabulary_size": preprocessor.tokenizer.vocabulary_size(),
           "max_sequence_length": 12}
    )  # fmt: skip
    return SimMIMRetriever(backbone, 16, loss, preprocessor=preprocessor)


def tiny_images(seed=0):
    shape = (len(CAPTIONS), 32, 32, 3)
    return np.random.default_rng(seed).integers(0, 256, shape).astype(np.uint8)


def test_pair_positives_are_the_diagonal_identical_captions_and_same_images():
    ids = np.array([[5, 6, 0], [7, 0, 0], [5, 6, 0], [8, 9, 0]], np.int32)
    expected = np.eye(4)
    expected[0, 2] = expected[2, 0] = 1  # the same caption for two images
    np.testing.assert_array_equal(pair_positives(ids), expected)
    with_images = pair_positives(ids, np.array([0, 1, 2, 1]))
    expected[1, 3] = expected[3, 1] = 1  # one image, two captions
    np.testing.assert_array_equal(with_images, expected)


def test_clip_loss_is_the_symmetric_soft_cross_entropy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 4)).astype(np.float32) * 3
    positives = np.eye(4, dtype=np.float32)
    positives[0, 2] = positives[2, 0] = 1

    def direction(rows, targets):
        log_p = rows - np.log(np.exp(rows).sum(axis=1, keepdims=True))
        targets = targets / targets.sum(axis=1, keepdims=True)
        return -(targets * log_p).sum(axis=1).mean()

    expected = (direction(logits, positives) + direction(logits.T, positives.T)) / 2
    got = float(contrastive_loss(logits, positives, "clip"))
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_sigmoid_loss_is_siglips_pairwise_loss():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(3, 3)).astype(np.float32)
    positives = np.eye(3, dtype=np.float32)
    labels = 2 * positives - 1
    expected = np.mean(np.sum(np.log1p(np.exp(-labels * logits)), axis=1))
    np.testing.assert_allclose(float(contrastive_loss(logits, positives, "sigmoid")), expected,
                               rtol=1e-5)  # fmt: skip
    with pytest.raises(ValueError, match="clip"):
        contrastive_loss(logits, positives, "triplet")


class TestTowerLayers(TestCase):
    def test_embedding_projection(self):
        rng = np.random.default_rng(0)
        tokens = rng.normal(size=(2, 5, 8)).astype(np.float32)
        mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
        layer = EmbeddingProjection(6)
        # Unit rows: a sum of squares is constant, so the shared training
        # check cannot move a weight; the task's fit test trains it.
        out = self.run_layer_test(layer, (tokens, mask), [(2, 6)], run_training_check=False)
        np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
        # Padding is left out of the mean: changing padded tokens changes nothing.
        changed = tokens.copy()
        changed[0, 3:] = 100.0
        np.testing.assert_allclose(layer(changed, mask), out, atol=1e-6)

    def test_contrastive_head_starts_as_the_papers(self):
        images = np.eye(3, 4, dtype=np.float32)
        texts = np.eye(2, 4, dtype=np.float32)
        self.run_layer_test(ContrastiveHead("sigmoid"), (images, texts), [(3, 2)])
        clip, sigmoid = ContrastiveHead("clip"), ContrastiveHead("sigmoid")
        np.testing.assert_allclose(clip(images, texts)[0, 0], 1 / 0.07, rtol=1e-5)
        np.testing.assert_allclose(sigmoid(images, texts), 10 * images @ texts.T - 10, atol=1e-5)
        assert not clip.logit_bias.trainable and sigmoid.logit_bias.trainable
        with pytest.raises(ValueError, match="sigmoid"):
            ContrastiveHead("triplet")


class TestSimMIMRetriever(TestCase):
    def test_config_fit_and_frozen_fusion(self):
        keras.utils.set_random_seed(0)
        model = tiny_retriever()
        x = {"images": tiny_images(), "captions": np.array(CAPTIONS)}
        assert model.get_config()["contrastive_loss"] == "clip"
        clone = SimMIMRetriever.from_config(model.get_config())
        assert clone.get_config() == model.get_config()
        memory = model.backbone.get_layer("semantic_memory")
        before = [np.array(w) for w in memory.weights]
        # The unused fusion layers are left out of what the optimizer sees,
        # without touching their own flags (a VQA model may share them).
        trainable = {id(v) for v in model.trainable_variables}
        assert memory.weights and not any(id(v) in trainable for v in memory.weights)
        assert memory.trainable and all(v.trainable for v in memory.weights)
        question_encoder = model.backbone.get_layer("question_encoder")
        assert all(id(v) in trainable for v in question_encoder.weights)
        with pytest.raises(ValueError, match="embedding_dim"):
            SimMIMRetriever(model.backbone, embedding_dim=0)
        model.compile(learning_rate=3e-3)
        losses = model.fit(x, epochs=60, batch_size=len(CAPTIONS), verbose=0).history["loss"]
        # Learns: the loss falls well below its start (ln 6 ≈ 1.8 for six
        # unrelated pairs; lower bound here, two captions being equal).
        assert losses[-1] < 0.5 * losses[0], losses
        for b, w in zip(before, memory.weights, strict=True):
            np.testing.assert_array_equal(b, np.array(w))  # fusion layers frozen
        image = model.embed_images(x["images"])
        text = model.embed_texts(CAPTIONS)
        assert image.shape == text.shape == (6, 16)
        np.testing.assert_allclose(np.linalg.norm(image, axis=1), 1.0, rtol=1e-5)
        # Trained on these pairs: every caption's nearest image is its own
        # (or the image of the identical caption).
        nearest = np.argmax(text @ image.T, axis=1)
        assert all(CAPTIONS[n] == CAPTIONS[i] for i, n in enumerate(nearest)), nearest

    def test_sigmoid_loss_trains(self):
        keras.utils.set_random_seed(0)
        model = tiny_retriever("sigmoid")
        model.compile(learning_rate=3e-3)
        x = {"images": tiny_images(), "captions": np.array(CAPTIONS)}
        losses = model.fit(x, epochs=15, batch_size=6, verbose=0).history["loss"]
        assert losses[-1] < losses[0], losses

    def test_preset_round_trip_and_search(self, tmp_path):
        model = tiny_retriever()
        x = model.preprocessor({"images": tiny_images(), "captions": np.array(CAPTIONS)})
        loaded = self.run_preset_test(model, x, str(tmp_path / "preset"))
        assert isinstance(loaded.preprocessor, SimMIMRetrieverPreprocessor)
        self.run_model_saving_test(model, x, str(tmp_path / "model.keras"))
        embeddings = loaded.embed_images(tiny_images())
        results = loaded.search(embeddings, "red circle", top_k=3)
        assert len(results) == 3 and results[0][1] >= results[1][1] >= results[2][1]
        with pytest.raises(SimMIMInputError, match="none of its words"):
            loaded.search(embeddings, "zebra xylophone")
        with pytest.raises(SimMIMInputError, match="no words"):
            loaded.embed_texts(["?!"])


def test_recall_at_k_counts_any_relevant_item():
    # Three images; four captions; caption 3 fits images 1 and 2.
    images = np.eye(3, dtype=np.float32)
    texts = np.array([[1, 0, 0], [0, 0.2, 1.1], [0, 0, 1], [0.1, 1, 0.9]], np.float32)
    relevance = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 1, 1]], bool)
    r = recall_at_k(images, texts, relevance, ks=(1, 2))
    # text→image: captions 0, 2, 3 find a relevant image first; caption 1 at rank 2.
    assert r["text_to_image_r1"] == 75.0 and r["text_to_image_r2"] == 100.0
    # image→text: image 0 → caption 0; image 1 → caption 3 (relevant);
    # image 2 → caption 1 first (irrelevant), then caption 2 or 3.
    assert r["image_to_text_r1"] == pytest.approx(200 / 3)
    assert r["image_to_text_r2"] == 100.0
    assert r["rsum"] == pytest.approx(75 + 100 + 200 / 3 + 100)


def test_recall_counts_ties_against_the_model_and_refuses_nan():
    images = np.ones((3, 2), np.float32)  # every image scores the same
    texts = np.ones((3, 2), np.float32)
    r = recall_at_k(images, texts, np.eye(3, dtype=bool), ks=(1, 3))
    assert r["text_to_image_r1"] == 0.0 and r["text_to_image_r3"] == 100.0
    with pytest.raises(ValueError, match="NaN"):
        recall_at_k(images * np.nan, texts, np.eye(3, dtype=bool))


def test_caption_relevance_joins_identical_texts():
    captions = CaptionSet(
        images=np.zeros((3, 2, 2, 3), np.uint8),
        image_paths=["a", "b", "c"],
        captions=["A red circle.", "a blue square", "a red circle", "a green one"],
        image_index=np.array([0, 0, 1, 2], np.int32),
        sources=[],
    )
    expected = [[1, 1, 0], [1, 0, 0], [1, 1, 0], [0, 0, 1]]
    np.testing.assert_array_equal(captions.relevance(), np.array(expected, bool))
    assert [list(c) for c in captions.captions_per_image()] == [[0, 1], [2], [3]]


def test_bad_caption_records_are_named_or_counted(retrieval_export, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    os.symlink(os.path.join(retrieval_export["data"], "images"), data / "images")
    records = [
        {"image": "images/000000.png", "caption": "a red circle", "split": "train"},
        {"image": "images/000001.png", "caption": "  ...  ", "split": "train"},
        {"image": "images/missing.png", "caption": "a blue square", "split": "train"},
    ]
    (data / "captions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    with pytest.raises(
        SimMIMInputError, match=r"captions.jsonl:2: caption '  \.\.\.  ' has no words"
    ):
        load_captions(str(data), "train")
    from simmim_tf.data.bad_records import BadRecords

    bad = BadRecords(skip=True)
    kept = load_captions(str(data), "train", bad=bad)
    assert kept.captions == ["a red circle"] and len(bad) == 2
    with pytest.raises(SimMIMInputError, match="no captions in split 'test'"):
        load_captions(str(data), "test", bad=BadRecords(skip=True))
    with pytest.raises(SimMIMInputError, match="captions.jsonl: not found"):
        load_captions(str(tmp_path), "train")


def test_cli_train_evaluate_export_index_search(retrieval_export, tmp_path, capsys):
    run, export, data = (retrieval_export[k] for k in ("run", "export", "data"))
    assert main(["evaluate", "--run", run, "--data", data]) == 0
    keras_result = json.load(open(os.path.join(run, "eval.json")))["recall"]
    assert keras_result["images"] == 6 and keras_result["captions"] == 12
    tower = os.path.join(export, "retrieval_float32_image.tflite")
    assert main(["evaluate", "--model", tower, "--data", data]) == 0
    out = capsys.readouterr().out
    # The float32 towers rank as Keras does: the same RSUM printed.
    assert out.count(f"{keras_result['rsum']:>8.1f}") == 2, out
    from simmim_tf.edge import EdgeRetriever, ImageIndex
    from simmim_tf.export.tflite_model_ops import non_builtin_ops, read_ops

    for name in ("retrieval_float32_image.tflite", "retrieval_float32_text.tflite"):
        with open(os.path.join(export, name), "rb") as f:
            assert not non_builtin_ops(read_ops(f.read()))
    model = SimMIMRetriever.from_preset(run)
    edge = EdgeRetriever(export)
    captions = load_captions(data, "test", image_size=model.backbone.image_size)
    np.testing.assert_allclose(
        edge.embed_images(captions.images), model.embed_images(captions.images), atol=1e-4
    )
    np.testing.assert_allclose(
        edge.embed_text(captions.captions[0]), model.embed_texts(captions.captions[:1])[0],
        atol=1e-4,
    )  # fmt: skip

    index = str(tmp_path / "index")
    images = os.path.join(data, "images")
    assert main(["index", "--model", tower, "--images", images, "--out", index]) == 0
    sheet = str(tmp_path / "sheet.png")
    query = captions.captions[0]
    assert (
        main(["search", "--index", index, "--query", query, "--top-k", "3", "--sheet", sheet]) == 0
    )
    lines = [
        line
        for line in capsys.readouterr().out.splitlines()
        if line.strip()[:2] in ("1.", "2.", "3.")
    ]
    assert len(lines) == 3 and os.path.getsize(sheet) > 0
    # The ranking printed is the Keras model's over the same images.
    files = sorted(os.listdir(images))
    from simmim_tf.preprocessing.image_loading import load_image

    everything = model.embed_images([load_image(os.path.join(images, f)) for f in files])
    best = [files[i] for i, _ in model.search(everything, query, top_k=3)]
    assert [os.path.basename(line.split()[-1]) for line in lines] == best

    # Refusals: a query without known words, a variant not exported, a
    # half-rebuilt index, an index of another model.
    assert main(["search", "--index", index, "--query", "zebra xylophone"]) == 2
    with pytest.raises(SimMIMInputError, match="has no int8 files"):
        EdgeRetriever(export, "int8")
    paths = json.load(open(os.path.join(index, "images.json")))
    json.dump(paths[:-1], open(os.path.join(index, "images.json"), "w"))
    with pytest.raises(SimMIMInputError, match="rebuild the index"):
        ImageIndex(index, edge)
    json.dump(paths, open(os.path.join(index, "images.json"), "w"))
    info = json.load(open(os.path.join(index, "index.json")))
    info["model_id"] = "another"
    json.dump(info, open(os.path.join(index, "index.json"), "w"))
    assert main(["search", "--index", index, "--query", query]) == 2
    err = capsys.readouterr().err
    assert "none of its words" in err and "built by model another" in err


def test_retrieval_starts_from_a_pretrained_image_encoder(retrieval_export, tmp_path, capsys):
    data = retrieval_export["data"]
    pretrained, run = str(tmp_path / "pretrained"), str(tmp_path / "run")
    images = os.path.join(data, "images")
    assert main(["pretrain", "--images", images, "--out", pretrained, "--epochs", "1"]) == 0
    train = ["train", "--task", "retrieval", "--data", data, "--out", run, "--epochs", "1",
             "--batch-size", "16", "--max-sequence-length", "48"]  # fmt: skip
    assert main([*train, "--init-from", pretrained]) == 0
    out = capsys.readouterr().out
    assert f"image encoder initialised from {pretrained}" in out
    model = SimMIMRetriever.from_preset(run)
    assert model.backbone.image_layers == 2  # the pretrained encoder's, not tiny's 0
