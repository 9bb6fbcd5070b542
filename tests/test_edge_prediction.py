"""The edge runtime's answer from a model's outputs (no model needed)."""

import types

import numpy as np

from simmim_tf.edge.edge_predictor import make_prediction
from simmim_tf.preprocessing.question_tokenizer import QuestionTokenizer


def test_tied_probabilities_give_the_first_answer_as_argmax_does():
    """int8 outputs often tie exactly: the answer must not depend on the sort."""
    tokenizer = QuestionTokenizer(vocabulary=["[PAD]", "[OOV]", "what", "shape"], sequence_length=4)
    predictor = types.SimpleNamespace(
        answers=[f"a{i}" for i in range(20)], tokenizer=tokenizer, grid_shape=(2, 2)
    )
    probabilities = np.zeros((1, 20), np.float32)
    probabilities[0, [3, 7, 11, 15]] = 0.25  # four-way tie
    out = {"probabilities": probabilities, "visual_attention": np.ones((1, 2, 4, 4), np.float32)}
    prediction = make_prediction(predictor, out, "what shape", np.array([1, 1, 0, 0], bool), 3)
    assert prediction.answer == "a3" == predictor.answers[int(np.argmax(probabilities))]
    assert [a for a, _ in prediction.top_k] == ["a3", "a7", "a11"]
