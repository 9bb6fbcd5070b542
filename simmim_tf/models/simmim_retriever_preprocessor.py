"""SimMIMRetrieverPreprocessor: raw images and caption strings → the tensors
`SimMIMRetriever` trains and embeds."""

import keras
import tensorflow as tf
from keras_hub.src.utils.tensor_utils import preprocessing_function

from simmim_tf.api_export import simmim_export
from simmim_tf.models.simmim_image_converter import SimMIMImageConverter
from simmim_tf.models.simmim_preprocessor import SimMIMPreprocessor
from simmim_tf.models.simmim_tokenizer import SimMIMTokenizer, padded_token_ids
from simmim_tf.preprocessing.question_tokenizer import QuestionTokenizer


@simmim_export
class SimMIMRetrieverPreprocessor(SimMIMPreprocessor):
    """Images → `SimMIMImageConverter`; captions → `SimMIMTokenizer`, padded
    to `sequence_length`.

    `x` is a dict with `images` and/or `captions` (either alone for one
    tower); a dict that already holds `token_ids` and `padding_mask` keeps
    them. `y`, when given, holds image ids (int, one per pair): pairs with
    the same id count as positives in the loss (one image, several
    captions); it passes through.

    Args:
        tokenizer: `SimMIMTokenizer`.
        image_converter: `SimMIMImageConverter`.
        sequence_length: int. Caption length in tokens.

    Example:
    >>> preprocessor = SimMIMRetrieverPreprocessor.from_data(
    ...     captions, image_size=128, sequence_length=48)
    >>> x = preprocessor({"images": images, "captions": captions})
    """

    @classmethod
    def from_data(cls, captions, image_size, sequence_length):
        """Fits the caption vocabulary (most frequent word first) to training captions."""
        vocabulary = QuestionTokenizer.fit(captions, sequence_length).vocabulary
        return cls(
            tokenizer=SimMIMTokenizer(vocabulary),
            image_converter=SimMIMImageConverter(image_size),
            sequence_length=sequence_length,
        )

    def caption_tokenizer(self):
        """The pure-Python twin of `tokenizer` (same vocabulary and length)."""
        return self._python_tokenizer()

    @preprocessing_function
    def token_ids(self, captions):
        """Captions (batch,) → token_ids int32 and padding_mask bool, (batch, sequence_length)."""
        return padded_token_ids(self.tokenizer, captions, self.sequence_length)

    @preprocessing_function
    def call(self, x, y=None, sample_weight=None):
        if not isinstance(x, dict) or not {"images", "captions", "token_ids"} & set(x):
            raise ValueError(
                'SimMIMRetrieverPreprocessor takes a dict {"images": ..., "captions": ...}; '
                f"received {type(x).__name__}"
            )
        out = {}
        if "images" in x:
            out["images"] = self.image_converter(x["images"])
        if "token_ids" in x:
            out["token_ids"], out["padding_mask"] = x["token_ids"], x["padding_mask"]
        elif "captions" in x:
            captions = tf.convert_to_tensor(x["captions"], tf.string)
            out["token_ids"], out["padding_mask"] = self.token_ids(captions)
        return keras.utils.pack_x_y_sample_weight(out, y, sample_weight)
