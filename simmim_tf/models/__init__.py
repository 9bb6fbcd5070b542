"""SimMIM models, in keras-hub's shape: the backbone, its tasks, the
preprocessor with its tokenizer and image converter, the masked-image
pretrainer of the image encoder, the image–text retriever, the captioner,
video question answering, and the presets."""

from simmim_tf.models.simmim_backbone import SimMIMBackbone
from simmim_tf.models.simmim_captioner import SimMIMCaptioner
from simmim_tf.models.simmim_captioner_preprocessor import SimMIMCaptionerPreprocessor
from simmim_tf.models.simmim_image_converter import SimMIMImageConverter
from simmim_tf.models.simmim_masked_image_pretrainer import SimMIMMaskedImagePretrainer
from simmim_tf.models.simmim_presets import SIMMIM_PRESETS
from simmim_tf.models.simmim_retriever import SimMIMRetriever
from simmim_tf.models.simmim_retriever_preprocessor import SimMIMRetrieverPreprocessor
from simmim_tf.models.simmim_tokenizer import SimMIMTokenizer
from simmim_tf.models.simmim_video_qa import SimMIMVideoQA
from simmim_tf.models.simmim_video_qa_preprocessor import SimMIMVideoQAPreprocessor
from simmim_tf.models.simmim_vqa import SimMIMVQA
from simmim_tf.models.simmim_vqa_preprocessor import SimMIMVQAPreprocessor

__all__ = [
    "SIMMIM_PRESETS",
    "SimMIMBackbone",
    "SimMIMCaptioner",
    "SimMIMCaptionerPreprocessor",
    "SimMIMImageConverter",
    "SimMIMMaskedImagePretrainer",
    "SimMIMRetriever",
    "SimMIMRetrieverPreprocessor",
    "SimMIMTokenizer",
    "SimMIMVideoQA",
    "SimMIMVideoQAPreprocessor",
    "SimMIMVQA",
    "SimMIMVQAPreprocessor",
]
