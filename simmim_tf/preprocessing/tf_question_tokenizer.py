"""`QuestionTokenizer` as TensorFlow ops: the same ids inside tf.data, a
SavedModel signature that takes question strings, and TFRecord input.

Built from a fitted `QuestionTokenizer` (its tokenizer.json), so there is one
vocabulary. The rules are the same: lower-case, words are runs of [a-z0-9],
everything else separates them, unknown words map to [OOV], sequences are
truncated or padded with [PAD] to `sequence_length`. tests/test_tokenizer_ids.py
checks that both give the same ids, including through an exported SavedModel.
The one difference: a question with no words gives all-padding ids here,
where `QuestionTokenizer.encode` raises (data validation catches it first).
Only core TF ops are used (no tensorflow-text), so TF Serving runs it as is.
"""

import tensorflow as tf

from simmim_tf.preprocessing.question_tokenizer import OOV_ID, PAD_ID


class TFQuestionTokenizer(tf.Module):
    """Questions (tf.string, (batch,)) to (token_ids int32, padding_mask int32).

    Args:
        tokenizer: QuestionTokenizer. The fitted tokenizer to mirror.

    Example:
    >>> tf_tok = TFQuestionTokenizer(QuestionTokenizer.load("RUN/tokenizer.json"))
    >>> ids, mask = tf_tok(tf.constant(["is the red object on the left?"]))
    """

    def __init__(self, tokenizer, name=None):
        super().__init__(name=name)
        self.sequence_length = tokenizer.sequence_length
        words = tokenizer.vocabulary[2:]  # [PAD] and [OOV] are never looked up
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(words, tf.string),
                tf.range(2, len(words) + 2, dtype=tf.int32),
            ),
            default_value=OOV_ID,
        )

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def __call__(self, questions):
        text = tf.strings.lower(questions, encoding="utf-8")
        text = tf.strings.regex_replace(text, "[^a-z0-9]+", " ")
        words = tf.strings.split(tf.strings.strip(text))  # ragged (batch, words)
        ids = self.table.lookup(words)[:, : self.sequence_length]
        ids = ids.to_tensor(default_value=PAD_ID, shape=[None, self.sequence_length])
        return ids, tf.cast(ids != PAD_ID, tf.int32)
