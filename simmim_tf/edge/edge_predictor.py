"""Answering questions with an exported .tflite and its sidecar metadata."""

import json
import os

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from simmim_tf.errors import SimMIMInputError
from simmim_tf.prediction import Prediction, make_prediction
from simmim_tf.preprocessing.image_conversion import convert_image
from simmim_tf.preprocessing.question_tokenizer import QuestionTokenizer

META_FILE = "simmim_meta.json"


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
        """Answers one question about one uint8 image (H, W), (H, W, 1 to 4) of any size."""
        image = check_image(image, self.image_size)
        ids, mask = self.tokenizer.encode(question)
        out = self._runner(images=image[None].astype(np.float32), token_ids=ids[None])
        return outputs_to_prediction(self, out, question, mask, top_k)


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


def read_sidecar(export_dir, meta_name, task, variant):
    """The sidecar `meta_name` of a two-signature export of a `task` run
    ("retrieval", "captioning"), checked to hold `variant`."""
    meta_path = os.path.join(export_dir, meta_name)
    if not os.path.isfile(meta_path):
        raise SimMIMInputError(
            f"{meta_path}: not found; `simmim-tf export` of a {task} run writes it"
        )
    with open(meta_path) as f:
        meta = json.load(f)
    if variant not in meta["variants"]:
        raise SimMIMInputError(
            f"{export_dir}: the {task} export of model {meta.get('model_id', '?')} has no "
            f"{variant} files (it has {', '.join(meta['variants'])}); export them with "
            f"--quantize {variant}"
        )
    return meta


def check_image(image, image_size):
    """An image as people have it → uint8 (image_size, image_size, 3) RGB.

    Grayscale and alpha are converted and any size is resized as the model's
    image converter does (`preprocessing.image_conversion`).
    """
    image = np.asarray(image)
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] not in (1, 2, 3, 4)):
        raise SimMIMInputError(
            f"image has shape {image.shape}; expected (height, width) or "
            "(height, width, channels) with 1 to 4 channels"
        )
    if image.size == 0:
        raise SimMIMInputError(f"image has no pixels (shape {image.shape})")
    if image.dtype != np.uint8:
        raise SimMIMInputError(f"image has dtype {image.dtype}; expected uint8 pixels 0..255")
    return convert_image(image, image_size)


def outputs_to_prediction(predictor, out, question, mask, top_k):
    """A `Prediction` from a .tflite's outputs for one question (batch 1)."""
    return make_prediction(
        out["probabilities"][0],
        out["visual_attention"][0],
        mask,
        question,
        predictor.tokenizer,
        predictor.answers,
        predictor.grid_shape,
        top_k,
        # Exports before 2026-12-07 have no anchor output.
        anchor_attention=out["anchor_attention"][0] if "anchor_attention" in out else None,
    )


__all__ = ["EdgePredictor", "Prediction", "check_image", "load_meta", "signature_runner"]
