"""SimMIMCaptionerPreprocessor: raw images and caption strings → the
teacher-forcing tensors `SimMIMCaptioner` trains on."""

import keras
import keras_hub
import tensorflow as tf
from keras_hub.src.utils.tensor_utils import preprocessing_function

from simmim_tf.api_export import simmim_export
from simmim_tf.models.simmim_image_converter import SimMIMImageConverter
from simmim_tf.models.simmim_preprocessor import SimMIMPreprocessor
from simmim_tf.models.simmim_tokenizer import SimMIMTokenizer
from simmim_tf.preprocessing.question_tokenizer import (
    END,
    OOV,
    PAD,
    PAD_ID,
    START,
    QuestionTokenizer,
)


@simmim_export
class SimMIMCaptionerPreprocessor(SimMIMPreprocessor):
    """Images → `SimMIMImageConverter`; captions → `SimMIMTokenizer`, then
    keras-hub's `StartEndPacker`: `[START] w1 ... wn [END] [PAD]...`, and
    the teacher-forcing split that keras-hub's causal-LM preprocessors make:
    `x["token_ids"]` is the sequence without its last token, `y` the same
    shifted by one (the next word at each position), `sample_weight` 1 on
    the real targets and 0 on padding.

    `x` holds `images` and `captions`; a dict that holds `token_ids` instead
    (already tokenised decoder inputs) keeps them, with `y` and
    `sample_weight` as given.

    The vocabulary is `[PAD]`, `[OOV]`, `[START]`, `[END]`, then the words
    of the training captions, most frequent first.

    Args:
        tokenizer: `SimMIMTokenizer` whose vocabulary has `[START]` and `[END]`.
        image_converter: `SimMIMImageConverter`.
        sequence_length: int. Decoder positions: a caption keeps at most
            `sequence_length - 1` words, then `[END]`.

    Example:
    >>> preprocessor = SimMIMCaptionerPreprocessor.from_data(
    ...     captions, image_size=128, sequence_length=48)
    >>> x, y, sample_weight = preprocessor({"images": images, "captions": captions})
    """

    def __init__(self, tokenizer, image_converter, sequence_length, **kwargs):
        super().__init__(tokenizer, image_converter, sequence_length, **kwargs)
        if self.sequence_length < 2:
            raise ValueError(f"sequence_length must be at least 2; received {sequence_length}")
        self.packer = None

    def build(self, input_shape):
        # The token ids are known only once the vocabulary is (assets load after __init__).
        self.packer = keras_hub.layers.StartEndPacker(
            sequence_length=self.sequence_length + 1,
            start_value=self.start_token_id,
            end_value=self.end_token_id,
            pad_value=PAD_ID,
            return_padding_mask=True,
        )
        self.built = True

    @classmethod
    def from_data(cls, captions, image_size, sequence_length):
        """Fits the caption vocabulary (most frequent word first) to training captions."""
        words = QuestionTokenizer.fit(captions, sequence_length).vocabulary[2:]
        return cls(
            tokenizer=SimMIMTokenizer([PAD, OOV, START, END] + words),
            image_converter=SimMIMImageConverter(image_size),
            sequence_length=sequence_length,
        )

    @property
    def start_token_id(self):
        return self.tokenizer.token_to_id(START)

    @property
    def end_token_id(self):
        return self.tokenizer.token_to_id(END)

    def caption_tokenizer(self):
        """The pure-Python twin of `tokenizer` (same vocabulary and length)."""
        return self._python_tokenizer()

    @preprocessing_function
    def packed_token_ids(self, captions):
        """Captions (batch,) → token ids int32 and padding mask bool, (batch,
        sequence_length + 1): start token, words, end token, padding."""
        if self.packer is None:
            self.build(None)
        ids, mask = self.packer(self.tokenizer(captions))
        return tf.cast(ids, tf.int32), mask

    @preprocessing_function
    def call(self, x, y=None, sample_weight=None):
        if not isinstance(x, dict) or "images" not in x or not {"captions", "token_ids"} & set(x):
            raise ValueError(
                'SimMIMCaptionerPreprocessor takes a dict {"images": ..., "captions": ...}; '
                f"received {type(x).__name__}"
            )
        if "token_ids" in x:  # already tokenised: passes through
            out = {"images": self.image_converter(x["images"]), "token_ids": x["token_ids"]}
            return keras.utils.pack_x_y_sample_weight(out, y, sample_weight)
        ids, mask = self.packed_token_ids(tf.convert_to_tensor(x["captions"], tf.string))
        out = {"images": self.image_converter(x["images"]), "token_ids": ids[..., :-1]}
        return keras.utils.pack_x_y_sample_weight(out, ids[..., 1:], mask[..., 1:])
