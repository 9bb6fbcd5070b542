"""On-device runtime: ai-edge-litert, NumPy and Pillow only (no TensorFlow)."""

from simmim_tf.edge.edge_predictor import EdgePredictor, Prediction

__all__ = ["EdgePredictor", "Prediction"]
