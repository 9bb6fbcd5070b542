"""`TFQuestionTokenizer`: `SimMIMTokenizer` as a `tf.Module` with a fixed
signature, for tf.data pipelines and SavedModel serving signatures.

The tokenisation rules live in `simmim_tf.models.SimMIMTokenizer` (TF ops)
alone; this wraps it with the padding mask that the exported signatures
return. tests/test_tokenizer_ids.py checks that the ids agree with the
pure-Python `QuestionTokenizer` (the edge runtime's), including through an
exported SavedModel. A question with no words gives all-padding ids here,
where `QuestionTokenizer.encode` raises (data validation catches it first).
Only core TF ops are used (no tensorflow-text), so TF Serving runs it as is.
"""

import tensorflow as tf

from simmim_tf.preprocessing.question_tokenizer import PAD_ID


class TFQuestionTokenizer(tf.Module):
    """Questions (tf.string, (batch,)) to (token_ids int32, padding_mask int32).

    Args:
        tokenizer: QuestionTokenizer. The vocabulary and sequence length to use.

    Example:
    >>> tf_tok = TFQuestionTokenizer(model.preprocessor.question_tokenizer())
    >>> ids, mask = tf_tok(tf.constant(["is the red object on the left?"]))
    """

    def __init__(self, tokenizer, name=None):
        from simmim_tf.models.simmim_tokenizer import SimMIMTokenizer

        super().__init__(name=name)
        self.sequence_length = tokenizer.sequence_length
        self.layer = SimMIMTokenizer(tokenizer.vocabulary, sequence_length=self.sequence_length)
        self.table = self.layer._table  # tracked here, so that SavedModels keep it

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def __call__(self, questions):
        ids = self.layer.tokenize(questions)  # (batch, sequence_length)
        return ids, tf.cast(ids != PAD_ID, tf.int32)
