"""Preprocessing shared by training, export and the edge runtime.

Pure Python + NumPy + Pillow: importing it never loads TensorFlow.
"""

from simmim_tf.preprocessing.answer_vocabulary import AnswerVocabulary
from simmim_tf.preprocessing.image_loading import load_image
from simmim_tf.preprocessing.question_tokenizer import QuestionTokenizer

__all__ = ["AnswerVocabulary", "QuestionTokenizer", "load_image"]
