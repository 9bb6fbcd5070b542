"""One tokenizer everywhere: the ids of training (Python), of the tf.data
streaming pipeline (TF ops), of the exported SavedModel's `tokenize`
signature and of the TFLite path (EdgePredictor, from simmim_meta.json) are
the same; the SavedModel's string signature answers as Keras does."""

import os

import numpy as np
import pytest
import tensorflow as tf

from simmim_tf.data.vqa_dataset import load_split
from simmim_tf.edge import EdgePredictor
from simmim_tf.preprocessing.tf_question_tokenizer import TFQuestionTokenizer
from simmim_tf.training.run_evaluation import predict_answers
from simmim_tf.training.runs import load_run

TRICKY = [
    "What is the SHAPE of the red object?",
    "is the gray object on the top?!",
    "what's the shape of the object closest to the blue-ish object",
    "Ünïcode words, café and İstanbul and the Kelvin sign K",
    "how many objects have the same shape as the green object? " * 4,  # truncated
    "a,b;c--d e_f 12 3.5",
]


@pytest.fixture(scope="module")
def exported(trained_export):
    test = load_split(trained_export["data"], "test")
    serving = tf.saved_model.load(os.path.join(trained_export["export"], "serving", "1"))
    return trained_export, test, serving


def test_same_ids_in_training_savedmodel_and_tflite(exported):
    trained_export, test, serving = exported
    questions = TRICKY + sorted(set(test.questions))
    model = load_run(trained_export["run"])
    tokenizer = model.preprocessor.question_tokenizer()
    training_ids, training_mask = tokenizer.encode_batch(questions)
    tf_ids, tf_mask = TFQuestionTokenizer(tokenizer)(tf.constant(questions))
    # The preprocessor the preset carries: what model.fit/predict tokenise with.
    preset_ids, preset_mask = model.preprocessor.token_ids(questions)
    np.testing.assert_array_equal(np.asarray(preset_ids), training_ids)
    np.testing.assert_array_equal(np.asarray(preset_mask), training_mask)
    saved = serving.signatures["tokenize"](questions=tf.constant(questions))
    edge = EdgePredictor(os.path.join(trained_export["export"], "model_int8.tflite")).tokenizer
    edge_ids, _ = edge.encode_batch(questions)
    np.testing.assert_array_equal(tf_ids.numpy(), training_ids)
    np.testing.assert_array_equal(saved["token_ids"].numpy(), training_ids)
    np.testing.assert_array_equal(edge_ids, training_ids)
    np.testing.assert_array_equal(saved["padding_mask"].numpy(), training_mask.astype(np.int32))
    np.testing.assert_array_equal(tf_mask.numpy(), training_mask.astype(np.int32))
    # The tricky questions exercise out-of-vocabulary words and truncation.
    assert (training_ids[:6] == 1).any() and (training_ids[4] != 0).all()


def test_answer_signature_agrees_with_keras(exported):
    trained_export, test, serving = exported
    model = load_run(trained_export["run"])
    subset = test.subset(np.arange(len(test)) < 40)
    expected = predict_answers(model, subset)
    image_bytes = [
        open(os.path.join(trained_export["data"], subset.image_paths[i]), "rb").read()
        for i in subset.image_index
    ]
    out = serving.signatures["serving_default"](
        image_bytes=tf.constant(image_bytes), questions=tf.constant(subset.questions)
    )
    assert [a[0].decode() for a in out["answers"].numpy()] == expected
    probabilities = out["probabilities"].numpy()  # top 3, best first
    assert probabilities.shape == (40, 3) and np.all(np.diff(probabilities, axis=1) <= 0)
    attention = out["attention_map"].numpy()
    assert attention.shape == (40, *model.backbone.grid_shape)
    np.testing.assert_allclose(attention.sum(axis=(1, 2)), 1.0, atol=1e-5)
    # The same map as the Keras model's, reduced by simmim_tf.explanation.
    from simmim_tf.explanation import visual_map

    ids, mask = model.preprocessor.question_tokenizer().encode(subset.questions[0])
    keras_out = model.answer_with_attention(
        {
            "images": subset.images[subset.image_index[:1]],
            "token_ids": ids[None],
            "padding_mask": mask[None],
        }
    )
    keras_map = visual_map(
        np.asarray(keras_out["visual_attention"])[0], mask, model.backbone.grid_shape
    )
    np.testing.assert_allclose(attention[0], keras_map, atol=1e-5)


def test_answer_signature_rejects_bad_input(exported):
    trained_export, test, serving = exported
    png = open(os.path.join(trained_export["data"], test.image_paths[0]), "rb").read()
    with pytest.raises(tf.errors.InvalidArgumentError, match="(?i)unknown image file format"):
        serving.signatures["serving_default"](
            image_bytes=tf.constant([b"not an image"]), questions=tf.constant(["is it?"])
        )
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError)):
        serving.signatures["serving_default"](
            image_bytes=tf.constant([png, png]), questions=tf.constant(["one question"])
        )
    with pytest.raises(tf.errors.InvalidArgumentError, match="empty question"):
        serving.signatures["serving_default"](
            image_bytes=tf.constant([png, png]), questions=tf.constant(["is it red?", " ?! "])
        )
    # An over-long question is truncated to the model's length, as in training.
    long = " ".join(["is the red object on the left"] * 8)
    out = serving.signatures["serving_default"](
        image_bytes=tf.constant([png]), questions=tf.constant([long])
    )
    assert out["token_ids"].shape == (1, 16) and (out["token_ids"].numpy() != 0).all()
    # The preprocessed-tensor signature refuses a wrong image shape.
    with pytest.raises((ValueError, TypeError, tf.errors.InvalidArgumentError)):
        serving.signatures["tensors"](
            images=tf.zeros((1, 10, 10, 3)), token_ids=tf.ones((1, 16), tf.int32)
        )
