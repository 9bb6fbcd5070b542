"""The answer from a model's outputs (no model needed): `simmim_tf.prediction`,
shared by the Keras model and the edge runtime."""

import numpy as np

from simmim_tf.edge.edge_predictor import check_image
from simmim_tf.prediction import make_prediction
from simmim_tf.preprocessing.question_tokenizer import QuestionTokenizer

TOKENIZER = QuestionTokenizer(vocabulary=["[PAD]", "[OOV]", "what", "shape"], sequence_length=4)


def _predict(probabilities, question="what shape"):
    return make_prediction(
        probabilities,
        np.ones((2, 4, 4), np.float32),
        np.array([1, 1, 0, 0], bool),
        question,
        TOKENIZER,
        [f"a{i}" for i in range(len(probabilities))],
        (2, 2),
        3,
    )


def test_tied_probabilities_give_the_first_answer_as_argmax_does():
    """int8 outputs often tie exactly: the answer must not depend on the sort."""
    probabilities = np.zeros(20, np.float32)
    probabilities[[3, 7, 11, 15]] = 0.25  # four-way tie
    prediction = _predict(probabilities)
    assert prediction.answer == "a3" == f"a{int(np.argmax(probabilities))}"
    assert [a for a, _ in prediction.top_k] == ["a3", "a7", "a11"]
    assert prediction.attention_map.shape == (2, 2)
    np.testing.assert_allclose(prediction.attention_map.sum(), 1.0, rtol=1e-6)


def test_the_first_anchor_is_drawn_where_the_model_has_one():
    assert _predict(np.full(5, 0.2, np.float32)).anchor_map is None
    anchors = np.array([[0.7, 0.1, 0.1, 0.1], [0.0, 0.0, 0.0, 1.0]], np.float32)  # two anchors
    prediction = make_prediction(
        np.full(5, 0.2, np.float32),
        np.ones((2, 4, 4), np.float32),
        np.array([1, 1, 0, 0], bool),
        "what shape",
        TOKENIZER,
        [f"a{i}" for i in range(5)],
        (2, 2),
        anchor_attention=anchors,
    )
    np.testing.assert_allclose(prediction.anchor_map, [[0.7, 0.1], [0.1, 0.1]], rtol=1e-6)


def test_unknown_words_are_named():
    prediction = _predict(np.full(5, 0.2, np.float32), "What colour is the zebra?")
    assert prediction.words == ["what", "colour", "is", "the"]  # truncated to 4
    assert prediction.unknown_words == ["colour", "is", "the"]
    assert _predict(np.full(5, 0.2, np.float32), "what shape?").unknown_words == []


def test_edge_images_are_converted_not_refused():
    gray = np.full((40, 60), 7, np.uint8)
    assert check_image(gray, 20).shape == (20, 20, 3)
    rgba = np.zeros((20, 20, 4), np.uint8)  # fully transparent: white
    assert (check_image(rgba, 20) == 255).all()
    for bad, message in [
        (np.zeros((0, 5, 3), np.uint8), "no pixels"),
        (np.zeros((5, 5, 5), np.uint8), "1 to 4 channels"),
        (np.zeros((5, 5, 3), np.float32), "expected uint8"),
    ]:
        try:
            check_image(bad, 20)
        except ValueError as e:
            assert message in str(e), e
        else:
            raise AssertionError(f"{bad.shape} {bad.dtype} was accepted")
