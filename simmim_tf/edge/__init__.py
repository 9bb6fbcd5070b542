"""On-device runtime: ai-edge-litert, NumPy and Pillow only (no TensorFlow)."""

from simmim_tf.edge.edge_predictor import EdgePredictor, Prediction
from simmim_tf.edge.edge_retriever import EdgeRetriever, ImageIndex
from simmim_tf.edge.edge_video import EdgeVideoAnswerer
from simmim_tf.edge.two_stage_predictor import TwoStagePredictor

__all__ = [
    "EdgePredictor",
    "EdgeRetriever",
    "EdgeVideoAnswerer",
    "ImageIndex",
    "Prediction",
    "TwoStagePredictor",
]
