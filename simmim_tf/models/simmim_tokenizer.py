"""SimMIMTokenizer: the word-level question tokenizer, as a keras-hub tokenizer."""

import os

import keras_hub
import tensorflow as tf
from keras_hub.src.utils.tensor_utils import preprocessing_function

from simmim_tf.api_export import simmim_export
from simmim_tf.models.simmim_backbone import SimMIMBackbone
from simmim_tf.preprocessing.question_tokenizer import OOV, OOV_ID, PAD, PAD_ID

VOCABULARY_FILE = "vocabulary.txt"


@simmim_export
class SimMIMTokenizer(keras_hub.tokenizers.Tokenizer):
    """Questions → word ids, in TensorFlow ops (tf.data, SavedModel, TFLite input).

    Lower-case; words are runs of [a-z0-9] and everything else separates
    them; a word outside the vocabulary maps to `[OOV]` (id 1), padding is
    `[PAD]` (id 0). The pure-Python twin that the edge runtime uses, and
    that builds vocabularies from data, is
    `simmim_tf.preprocessing.QuestionTokenizer`; tests/test_tokenizer_ids.py
    checks both give the same ids. The vocabulary is saved as an asset
    (`vocabulary.txt`, one word per line, id = line number), as keras-hub's
    WordPiece vocabulary is.

    Args:
        vocabulary: list of str, a path to a vocabulary file, or None (set
            later by `load_assets`). Must start with `[PAD]`, `[OOV]`.
        sequence_length: int or None. If set, outputs are padded or
            truncated to this length (dense int32); otherwise ragged.

    Example:
    >>> tokenizer = SimMIMTokenizer(["[PAD]", "[OOV]", "what", "colour"])
    >>> tokenizer(["What colour is it?"])  # ragged [[2, 3, 1, 1]]
    """

    backbone_cls = SimMIMBackbone

    def __init__(self, vocabulary=None, sequence_length=None, **kwargs):
        kwargs.setdefault("dtype", "int32")
        super().__init__(**kwargs)
        self.sequence_length = sequence_length
        self.file_assets = [VOCABULARY_FILE]
        self.set_vocabulary(vocabulary)

    def set_vocabulary(self, vocabulary):
        """A list of words or the path of a vocabulary file; None leaves it unset."""
        if vocabulary is None:
            self.vocabulary = None
            self._table = None
            return
        if isinstance(vocabulary, str):
            with open(vocabulary, encoding="utf-8") as f:
                vocabulary = [line.rstrip("\n") for line in f]
        vocabulary = list(vocabulary)
        if vocabulary[:2] != [PAD, OOV]:
            raise ValueError(f"the vocabulary must start with {PAD!r}, {OOV!r}")
        self.vocabulary = vocabulary
        words = vocabulary[2:]  # [PAD] and [OOV] are never looked up
        self._table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(words, tf.string), tf.range(2, len(words) + 2, dtype=tf.int32)
            ),
            default_value=OOV_ID,
        )

    def save_assets(self, dir_path):
        with open(os.path.join(dir_path, VOCABULARY_FILE), "w", encoding="utf-8") as f:
            f.write("".join(word + "\n" for word in self.vocabulary))

    def load_assets(self, dir_path):
        self.set_vocabulary(os.path.join(dir_path, VOCABULARY_FILE))

    def get_vocabulary(self):
        return list(self.vocabulary)

    def vocabulary_size(self):
        return len(self.vocabulary)

    def id_to_token(self, id):
        return self.vocabulary[id]

    def token_to_id(self, token):
        return self.vocabulary.index(token) if token in self.vocabulary else OOV_ID

    @preprocessing_function
    def tokenize(self, inputs):
        if self._table is None:
            raise ValueError("SimMIMTokenizer has no vocabulary: pass one or call load_assets")
        scalar = inputs.shape.rank == 0
        text = tf.strings.lower(tf.reshape(inputs, [-1]), encoding="utf-8")
        text = tf.strings.regex_replace(text, "[^a-z0-9]+", " ")
        words = tf.strings.split(tf.strings.strip(text))  # ragged (batch, words)
        ids = self._table.lookup(words)
        if self.sequence_length is not None:
            ids = ids[:, : self.sequence_length].to_tensor(
                default_value=PAD_ID, shape=[None, self.sequence_length]
            )
        return ids[0] if scalar else ids

    @preprocessing_function
    def detokenize(self, inputs):
        ids = tf.convert_to_tensor(inputs) if not isinstance(inputs, tf.RaggedTensor) else inputs
        words = tf.gather(tf.constant(self.vocabulary), ids)
        if isinstance(words, tf.RaggedTensor):
            return tf.strings.reduce_join(words, separator=" ", axis=-1)
        words = tf.where(ids == PAD_ID, tf.constant(""), words)
        return tf.strings.strip(tf.strings.reduce_join(words, separator=" ", axis=-1))

    def get_config(self):
        config = super().get_config()
        # The vocabulary is an asset (`save_assets`), not config.
        config.update({"vocabulary": None, "sequence_length": self.sequence_length})
        return config


def padded_token_ids(tokenizer, texts, sequence_length):
    """Texts (batch,) → token_ids int32 and padding_mask bool, (batch,
    sequence_length): truncated or padded with `[PAD]`."""
    ids = tokenizer(texts)[:, :sequence_length]
    ids = ids.to_tensor(default_value=PAD_ID, shape=[None, sequence_length])
    return ids, ids != PAD_ID
