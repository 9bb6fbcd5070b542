"""`SimMIMPreprocessor`: what the three tasks' preprocessors share (a
tokenizer, an image converter and a text length, keras-hub's layout)."""

import keras_hub

from simmim_tf.models.simmim_backbone import SimMIMBackbone
from simmim_tf.models.simmim_image_converter import SimMIMImageConverter
from simmim_tf.models.simmim_tokenizer import SimMIMTokenizer
from simmim_tf.preprocessing.question_tokenizer import QuestionTokenizer


class SimMIMPreprocessor(keras_hub.models.Preprocessor):
    """Images through `image_converter`, text through `tokenizer` padded or
    cut to `sequence_length`; a task's subclass adds its labels."""

    backbone_cls = SimMIMBackbone
    tokenizer_cls = SimMIMTokenizer
    image_converter_cls = SimMIMImageConverter

    def __init__(self, tokenizer, image_converter, sequence_length, **kwargs):
        super().__init__(**kwargs)
        self.tokenizer = tokenizer
        self.image_converter = image_converter
        self.sequence_length = int(sequence_length)

    @property
    def image_size(self):
        """The side of the square images the backbone takes."""
        return self.image_converter.image_size[0]

    def _python_tokenizer(self):
        """The pure-Python twin of `tokenizer` (same vocabulary and length)."""
        return QuestionTokenizer(self.tokenizer.get_vocabulary(), self.sequence_length)

    def get_config(self):
        config = super().get_config()
        config.update({"sequence_length": self.sequence_length})
        return config
