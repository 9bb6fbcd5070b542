"""The fixed answer vocabulary of the VQA classifier: top-K answers with counts."""

import collections

from simmim_tf.errors import SimMIMInputError
from simmim_tf.preprocessing.json_config import JsonConfig


class AnswerVocabulary(JsonConfig):
    """Answers in id order, with their training counts.

    Args:
        answers: list of str. Index = class id.
        counts: list of int or None. Training count of each answer.
    """

    def __init__(self, answers, counts=None):
        self.answers = list(answers)
        self.counts = list(counts) if counts is not None else [0] * len(self.answers)
        self._ids = {a: i for i, a in enumerate(self.answers)}

    @classmethod
    def fit(cls, answers, max_answers=None):
        counts = collections.Counter(answers).most_common()
        counts.sort(key=lambda ac: (-ac[1], ac[0]))
        counts = counts[:max_answers] if max_answers else counts
        return cls([a for a, _ in counts], [c for _, c in counts])

    def __len__(self):
        return len(self.answers)

    def __contains__(self, answer):
        return answer in self._ids

    def id(self, answer, where=""):
        """The class id of an answer; an unknown answer is an error, never dropped."""
        try:
            return self._ids[answer]
        except KeyError:
            raise SimMIMInputError(
                f"{where}answer {answer!r} is not in the answer vocabulary "
                f"({len(self.answers)} answers)"
            ) from None

    def get_config(self):
        return {"answers": self.answers, "counts": self.counts}
