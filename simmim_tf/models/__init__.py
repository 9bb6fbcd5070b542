"""SimMIM models: the backbone, its tasks and the presets."""

from simmim_tf.models.simmim_backbone import SimMIMBackbone
from simmim_tf.models.simmim_presets import SIMMIM_PRESETS
from simmim_tf.models.simmim_vqa import SimMIMVQA

__all__ = ["SIMMIM_PRESETS", "SimMIMBackbone", "SimMIMVQA"]
