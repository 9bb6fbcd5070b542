"""SimMIMVQAPreprocessor: raw images, question strings and answer strings →
the tensors `SimMIMVQA` trains and predicts on."""

import keras
import tensorflow as tf
from keras_hub.src.utils.tensor_utils import preprocessing_function

from simmim_tf.api_export import simmim_export
from simmim_tf.models.simmim_image_converter import SimMIMImageConverter
from simmim_tf.models.simmim_preprocessor import SimMIMPreprocessor
from simmim_tf.models.simmim_tokenizer import SimMIMTokenizer, padded_token_ids
from simmim_tf.preprocessing.question_tokenizer import QuestionTokenizer


@simmim_export
class SimMIMVQAPreprocessor(SimMIMPreprocessor):
    """Images → `SimMIMImageConverter`; questions → `SimMIMTokenizer`, padded
    to `sequence_length`; answers (strings) → class ids.

    `x` is a dict `{"images": ..., "questions": ...}`. A dict that already
    holds `token_ids` and `padding_mask` (a tf.data pipeline that tokenised
    itself) keeps them; only its images go through the converter. `y` may be
    answer strings, looked up in `answers` (an answer outside them is an
    error, never dropped), or class ids, which pass through.

    Args:
        tokenizer: `SimMIMTokenizer`.
        image_converter: `SimMIMImageConverter`.
        answers: list of str. The answer vocabulary, index = class id.
        sequence_length: int. Question length in tokens.

    Example:
    >>> preprocessor = SimMIMVQAPreprocessor.from_data(
    ...     questions, answers, image_size=75, sequence_length=16)
    >>> x, y = preprocessor({"images": images, "questions": questions}, answers)
    """

    def __init__(self, tokenizer, image_converter, answers, sequence_length, **kwargs):
        super().__init__(tokenizer, image_converter, sequence_length, **kwargs)
        self.answers = list(answers)
        self._answer_ids = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(self.answers, tf.string),
                tf.range(len(self.answers), dtype=tf.int32),
            ),
            default_value=-1,
        )

    @classmethod
    def from_data(cls, questions, answers, image_size, sequence_length, max_answers=None):
        """Fits the question vocabulary (most frequent word first) and the
        answer vocabulary (most frequent answer first) to training data."""
        from simmim_tf.preprocessing.answer_vocabulary import AnswerVocabulary

        vocabulary = QuestionTokenizer.fit(questions, sequence_length).vocabulary
        return cls(
            tokenizer=SimMIMTokenizer(vocabulary),
            image_converter=SimMIMImageConverter(image_size),
            answers=AnswerVocabulary.fit(answers, max_answers).answers,
            sequence_length=sequence_length,
        )

    def question_tokenizer(self):
        """The pure-Python twin of `tokenizer` (same vocabulary and length)."""
        return self._python_tokenizer()

    @preprocessing_function
    def token_ids(self, questions):
        """Questions (batch,) → token_ids int32 and padding_mask bool, (batch, sequence_length)."""
        return padded_token_ids(self.tokenizer, questions, self.sequence_length)

    def answer_ids(self, answers):
        """Answer strings → class ids; an answer outside `answers` fails with its name."""
        ids = self._answer_ids.lookup(answers)
        unknown = tf.boolean_mask(answers, ids < 0)
        check = tf.debugging.Assert(
            tf.size(unknown) == 0,
            ["answers not in the answer vocabulary:", unknown[:3]],
            summarize=3,
        )
        with tf.control_dependencies([check]):
            return tf.identity(ids)

    @preprocessing_function
    def call(self, x, y=None, sample_weight=None):
        if not isinstance(x, dict) or "images" not in x:
            raise ValueError(
                'SimMIMVQAPreprocessor takes a dict {"images": ..., "questions": ...}; '
                f"received {type(x).__name__}"
            )
        out = {"images": self.image_converter(x["images"])}
        return self._with_questions_and_answers(x, out, y, sample_weight)

    def _with_questions_and_answers(self, x, out, y, sample_weight):
        """`out` with x's token ids (kept, or tokenised from its questions),
        packed with `y` as class ids and `sample_weight`."""
        if "token_ids" in x:
            out["token_ids"], out["padding_mask"] = x["token_ids"], x["padding_mask"]
        else:
            if "questions" not in x:
                raise ValueError(f'{type(self).__name__}: the input dict has no "questions"')
            out["token_ids"], out["padding_mask"] = self.token_ids(x["questions"])
        if y is not None and y.dtype == tf.string:
            y = self.answer_ids(y)
        return keras.utils.pack_x_y_sample_weight(out, y, sample_weight)

    def get_config(self):
        config = super().get_config()
        config.update({"answers": self.answers})
        return config
