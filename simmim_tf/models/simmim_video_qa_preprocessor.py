"""SimMIMVideoQAPreprocessor: raw clips, question strings and answer
strings → the tensors `SimMIMVideoQA` trains and predicts on."""

import tensorflow as tf
from keras_hub.src.utils.tensor_utils import preprocessing_function

from simmim_tf.api_export import simmim_export
from simmim_tf.models.simmim_vqa_preprocessor import SimMIMVQAPreprocessor


@simmim_export
class SimMIMVideoQAPreprocessor(SimMIMVQAPreprocessor):
    """`SimMIMVQAPreprocessor` for clips: every frame through the image
    converter, questions through the tokenizer, answer strings to class ids.

    `x` is a dict `{"frames": (clips, frames, H, W, C), "questions": ...}`,
    with `"clip_index"` (int, one per question, into the clips) where
    several questions share a clip; without it, question i is about clip i.
    A dict that already holds `token_ids` and `padding_mask` keeps them.

    Example:
    >>> preprocessor = SimMIMVideoQAPreprocessor.from_data(
    ...     questions, answers, image_size=48, sequence_length=16)
    >>> x, y = preprocessor({"frames": clips, "questions": questions}, answers)
    """

    @preprocessing_function
    def call(self, x, y=None, sample_weight=None):
        if not isinstance(x, dict) or "frames" not in x:
            raise ValueError(
                'SimMIMVideoQAPreprocessor takes a dict {"frames": ..., "questions": ...}; '
                f"received {type(x).__name__}"
            )
        frames = tf.convert_to_tensor(x["frames"])
        if frames.shape.rank != 5:
            raise ValueError(
                f'"frames" must be (clips, frames, height, width, channels); got {frames.shape}'
            )
        clips, length = tf.shape(frames)[0], tf.shape(frames)[1]
        converted = self.image_converter(tf.reshape(frames, [-1, *frames.shape[2:]]))
        out = {"frames": tf.reshape(converted, [clips, length, *converted.shape[1:]])}
        if "clip_index" in x:
            out["clip_index"] = tf.cast(x["clip_index"], tf.int32)
        return self._with_questions_and_answers(x, out, y, sample_weight)
