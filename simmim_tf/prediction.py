"""`Prediction`: one answered question, the same type from the Keras model
(`SimMIMVQA.answer`) and from the edge runtime (`simmim_tf.edge`).

NumPy only, so the edge runtime imports it without TensorFlow.
"""

import dataclasses

import numpy as np

from simmim_tf.explanation import first_anchor_map, top_answers, visual_map


@dataclasses.dataclass
class Prediction:
    answer: str
    probability: float
    top_k: list  # [(answer, probability), ...], best first
    words: list  # the question's words the model saw
    unknown_words: list  # of those, the ones outside the model's vocabulary
    attention_map: np.ndarray  # (rows, cols), visual attention over regions, sums to 1
    # (rows, cols), sums to 1: where the relational attention's anchor looks
    # (the object the question names); None for a model without one.
    anchor_map: np.ndarray | None = None


def make_prediction(
    probabilities,
    visual_attention,
    mask,
    question,
    tokenizer,
    answers,
    grid_shape,
    k=3,
    anchor_attention=None,
):
    """A `Prediction` for one question.

    probabilities: (answers,); visual_attention: (heads, tokens, regions);
    mask: (tokens,) bool; tokenizer: the pure-Python `QuestionTokenizer`;
    anchor_attention: (regions,) or (anchors, regions), or None.
    """
    best = top_answers(probabilities, answers, k)
    return Prediction(
        answer=best[0][0],
        probability=best[0][1],
        top_k=best,
        words=tokenizer.words(question),
        unknown_words=tokenizer.unknown_words(question),
        attention_map=visual_map(visual_attention, mask, grid_shape),
        anchor_map=first_anchor_map(anchor_attention, grid_shape),
    )
