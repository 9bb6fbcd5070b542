"""Word-level question tokenizer, the same in training and on the device."""

import collections
import re

import numpy as np

from simmim_tf.errors import SimMIMInputError
from simmim_tf.preprocessing.json_config import JsonConfig

PAD, OOV = "[PAD]", "[OOV]"
PAD_ID, OOV_ID = 0, 1
# A captioner's vocabulary follows [PAD], [OOV] with these (ids 2 and 3).
# Brackets never survive `split_words`, so no text maps to them.
START, END = "[START]", "[END]"
_WORD = re.compile(r"[a-z0-9]+")


def split_words(text):
    """Lower-cased words and numbers; punctuation is dropped."""
    return _WORD.findall(text.lower())


class QuestionTokenizer(JsonConfig):
    """Maps a question to `sequence_length` token ids and a padding mask.

    Id 0 is padding and id 1 the out-of-vocabulary token: a word never seen in
    training maps to it (no error). Longer questions are truncated.

    Args:
        vocabulary: list of str. Words, index = id; must start with
            `[PAD]`, `[OOV]`.
        sequence_length: int. Fixed length of the encoded question.

    Example:
    >>> tok = QuestionTokenizer.fit(["is the red object on the left?"], 8)
    >>> ids, mask = tok.encode("is the purple object on the left?")
    >>> int(ids[2]) == 1  # "purple" is out of vocabulary
    True
    """

    def __init__(self, vocabulary, sequence_length):
        if list(vocabulary[:2]) != [PAD, OOV]:
            raise ValueError(f"vocabulary must start with {PAD!r}, {OOV!r}")
        self.vocabulary = list(vocabulary)
        self.sequence_length = int(sequence_length)
        self._ids = {word: i for i, word in enumerate(self.vocabulary)}

    @classmethod
    def fit(cls, questions, sequence_length, min_count=1):
        """Builds the vocabulary from training questions, most frequent first."""
        counts = collections.Counter(w for q in questions for w in split_words(q))
        words = sorted(
            (w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w)
        )
        return cls([PAD, OOV] + words, sequence_length)

    @property
    def vocabulary_size(self):
        return len(self.vocabulary)

    def encode(self, question):
        """Returns (ids int32 (sequence_length,), padding_mask bool (sequence_length,))."""
        words = split_words(question)
        if not words:
            raise SimMIMInputError(f"empty question: {question!r} has no words")
        ids = np.zeros(self.sequence_length, np.int32)
        words = words[: self.sequence_length]
        ids[: len(words)] = [self._ids.get(w, OOV_ID) for w in words]
        return ids, ids != PAD_ID

    def encode_batch(self, questions):
        """Returns (ids int32 (n, sequence_length), padding_mask bool (n, sequence_length))."""
        ids = (
            np.stack([self.encode(q)[0] for q in questions])
            if questions
            else np.zeros((0, self.sequence_length), np.int32)
        )
        return ids, ids != PAD_ID

    def words(self, question):
        """The words the model sees, truncated as `encode` truncates them."""
        return split_words(question)[: self.sequence_length]

    def unknown_words(self, question):
        """The words of `question` the model sees as [OOV], in order."""
        return [w for w in self.words(question) if w not in self._ids]

    def get_config(self):
        return {"vocabulary": self.vocabulary, "sequence_length": self.sequence_length}


def check_known_words(tokenizer, query):
    """A one-line error for a search query that has no words, or none the
    model knows: ranking images by it would be meaningless."""
    words = tokenizer.words(query)
    if not words:
        raise SimMIMInputError(f"query {query!r} has no words")
    if len(tokenizer.unknown_words(query)) == len(words):
        examples = ", ".join(tokenizer.vocabulary[2:7])
        raise SimMIMInputError(
            f"query {query!r}: none of its words is in the model's vocabulary "
            f"({len(tokenizer.vocabulary) - 2} words, e.g. {examples})"
        )


def ids_to_caption(ids, vocabulary):
    """A captioner's token ids → words joined by spaces, stopping at
    `[END]`, skipping `[START]` and `[PAD]`."""
    words = []
    for i in ids:
        word = vocabulary[int(i)]
        if word == END:
            break
        if word not in (START, PAD):
            words.append(word)
    return " ".join(words)
