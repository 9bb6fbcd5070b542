"""Answering questions with an exported .tflite and its sidecar metadata."""

import dataclasses
import json
import os

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from simmim_tf.errors import SimMIMInputError
from simmim_tf.explanation import visual_map
from simmim_tf.preprocessing.question_tokenizer import QuestionTokenizer

META_FILE = "simmim_meta.json"


@dataclasses.dataclass
class Prediction:
    answer: str
    probability: float
    top_k: list  # [(answer, probability), ...], best first
    words: list  # the question's words the model saw
    attention_map: np.ndarray  # (rows, cols), visual attention over regions, sums to 1


class EdgePredictor:
    """Loads `model_*.tflite` and `simmim_meta.json` (from the same folder by default).

    Args:
        model_path: str. Path of the .tflite file.
        meta_path: str or None. Sidecar with tokenizer and answers.
        num_threads: int or None. CPU threads for the interpreter.

    Example:
    >>> predictor = EdgePredictor("export/model_int8.tflite")
    >>> predictor.predict(image, "what is the shape of the red object?").answer
    'circle'
    """

    def __init__(self, model_path, meta_path=None, num_threads=None):
        meta = load_meta(model_path, meta_path)
        self.tokenizer = QuestionTokenizer(**meta["tokenizer"])
        self.answers = meta["answers"]
        self.image_size = meta["image_size"]
        self.grid_shape = tuple(meta["grid_shape"])
        self._runner = signature_runner(model_path, num_threads)

    def predict(self, image, question, top_k=3):
        """Answers one question about one uint8 (S, S, 3) image."""
        image = check_image(image, self.image_size)
        ids, mask = self.tokenizer.encode(question)
        out = self._runner(images=image[None].astype(np.float32), token_ids=ids[None])
        return make_prediction(self, out, question, mask, top_k)


def load_meta(model_path, meta_path=None):
    """The sidecar of an export (tokenizer, answers, sizes), beside the model by default."""
    if not os.path.isfile(model_path):
        raise SimMIMInputError(f"model not found: {model_path}")
    meta_path = meta_path or os.path.join(os.path.dirname(model_path) or ".", META_FILE)
    if not os.path.isfile(meta_path):
        raise SimMIMInputError(
            f"{meta_path}: not found; it is written by `simmim-tf export` beside the model"
        )
    with open(meta_path) as f:
        return json.load(f)


def signature_runner(model_path, num_threads=None):
    """The runner of the first (only) signature of a .tflite file."""
    if not os.path.isfile(model_path):
        raise SimMIMInputError(f"model not found: {model_path}")
    try:
        interpreter = Interpreter(model_path=model_path, num_threads=num_threads)
    except ValueError as e:
        raise SimMIMInputError(f"{model_path}: not a loadable .tflite model ({e})") from None
    return interpreter.get_signature_runner(next(iter(interpreter.get_signature_list())))


def check_image(image, image_size):
    image = np.asarray(image)
    expected = (image_size, image_size, 3)
    if image.shape != expected:
        raise SimMIMInputError(f"image has shape {image.shape}; this model expects {expected}")
    return image


def make_prediction(predictor, out, question, mask, top_k):
    """A `Prediction` from a model's outputs for one question."""
    probabilities = out["probabilities"][0]
    # Stable: of answers with equal probabilities (int8 outputs often tie),
    # the first wins, as with argmax everywhere else.
    order = np.argsort(-probabilities, kind="stable")[:top_k]
    return Prediction(
        answer=predictor.answers[order[0]],
        probability=float(probabilities[order[0]]),
        top_k=[(predictor.answers[i], float(probabilities[i])) for i in order],
        words=predictor.tokenizer.words(question),
        attention_map=visual_map(out["visual_attention"][0], mask, predictor.grid_shape),
    )
