"""The time features of a frame's index, shared by the streaming memory and
the edge runtime (NumPy only: the device computes them for each frame)."""

import math

import numpy as np

# Periods (in frames) of the sine-cosine features: the shortest tells
# consecutive frames apart, the longest orders a long clip.
TIME_PERIODS = (4.0, 8.0, 16.0, 64.0)


def time_features(frame):
    """float32 (2 * len(TIME_PERIODS),): sin and cos of 2π·frame/period."""
    angles = [2 * math.pi * frame / p for p in TIME_PERIODS]
    return np.array([f(a) for a in angles for f in (math.sin, math.cos)], "float32")
