"""`Prediction`: one answered question, the same type from the Keras model
(`SimMIMVQA.answer`) and from the edge runtime (`simmim_tf.edge`).

NumPy only, so the edge runtime imports it without TensorFlow.
"""

import dataclasses

import numpy as np

from simmim_tf.explanation import top_answers, visual_map


@dataclasses.dataclass
class Prediction:
    answer: str
    probability: float
    top_k: list  # [(answer, probability), ...], best first
    words: list  # the question's words the model saw
    unknown_words: list  # of those, the ones outside the model's vocabulary
    attention_map: np.ndarray  # (rows, cols), visual attention over regions, sums to 1


def make_prediction(
    probabilities, visual_attention, mask, question, tokenizer, answers, grid_shape, k=3
):
    """A `Prediction` for one question.

    probabilities: (answers,); visual_attention: (heads, tokens, regions);
    mask: (tokens,) bool; tokenizer: the pure-Python `QuestionTokenizer`.
    """
    best = top_answers(probabilities, answers, k)
    return Prediction(
        answer=best[0][0],
        probability=best[0][1],
        top_k=best,
        words=tokenizer.words(question),
        unknown_words=tokenizer.unknown_words(question),
        attention_map=visual_map(visual_attention, mask, grid_shape),
    )
