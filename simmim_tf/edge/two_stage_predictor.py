"""Many questions about one picture: the image encoder runs once.

Uses the two files of `simmim-tf export --two-stage VARIANT`:
model_<variant>_encode_image.tflite and model_<variant>_answer.tflite.
"""

import os

import numpy as np

from simmim_tf.edge.edge_predictor import (
    check_image,
    load_meta,
    outputs_to_prediction,
    signature_runner,
)
from simmim_tf.preprocessing.question_tokenizer import QuestionTokenizer


class TwoStagePredictor:
    """`encode(image)` once per picture, then `predict(regions, question)` per question.

    Args:
        export_dir: str. The export folder (simmim_meta.json and the two files).
        variant: str. float32, float16 or dynamic.
        num_threads: int or None. CPU threads for the interpreters.

    Example:
    >>> predictor = TwoStagePredictor("export", "float32")
    >>> regions = predictor.encode(image)
    >>> predictor.predict(regions, "what is the shape of the red object?").answer
    'circle'
    """

    def __init__(self, export_dir, variant="float32", num_threads=None):
        encoder = os.path.join(export_dir, f"model_{variant}_encode_image.tflite")
        meta = load_meta(encoder)
        self.tokenizer = QuestionTokenizer(**meta["tokenizer"])
        self.answers = meta["answers"]
        self.image_size = meta["image_size"]
        self.grid_shape = tuple(meta["grid_shape"])
        self._encode = signature_runner(encoder, num_threads)
        self._answer = signature_runner(
            os.path.join(export_dir, f"model_{variant}_answer.tflite"), num_threads
        )

    def encode(self, image):
        """Regions (1, regions, hidden_dim) of one uint8 image of any size (see `check_image`)."""
        image = check_image(image, self.image_size)
        return self._encode(images=image[None].astype(np.float32))["regions"]

    def predict(self, regions, question, top_k=3):
        """Answers one question from the regions `encode` returned."""
        ids, mask = self.tokenizer.encode(question)
        out = self._answer(regions=regions, token_ids=ids[None])
        return outputs_to_prediction(self, out, question, mask, top_k)
