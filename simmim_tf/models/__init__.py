"""SimMIM models, in keras-hub's shape: the backbone, its tasks, the
preprocessor with its tokenizer and image converter, and the presets."""

from simmim_tf.models.simmim_backbone import SimMIMBackbone
from simmim_tf.models.simmim_image_converter import SimMIMImageConverter
from simmim_tf.models.simmim_presets import SIMMIM_PRESETS
from simmim_tf.models.simmim_tokenizer import SimMIMTokenizer
from simmim_tf.models.simmim_vqa import SimMIMVQA
from simmim_tf.models.simmim_vqa_preprocessor import SimMIMVQAPreprocessor

__all__ = [
    "SIMMIM_PRESETS",
    "SimMIMBackbone",
    "SimMIMImageConverter",
    "SimMIMTokenizer",
    "SimMIMVQA",
    "SimMIMVQAPreprocessor",
]
